"""The event source process: the stream poller feeding the broadcast handler, as Lambda's event
source mapping feeds the broadcast function, in a process of its own.

With 100 subscribers a message means 100 management API posts: the broadcaster signs and sends
them, the relay serves them and writes the frames. In one process both halves took turns on
one core under the GIL; in two they run on both cores (docs/performance.md, B3).

The relay starts ``python -m userstatus_local.event_source STREAM_ARN`` with the handlers'
environment (``userstatus_local.environment``) and talks to it over pipes:

* the child prints ``READY`` on stdout once it is positioned at the end of the stream;
* each byte the relay writes to the child's stdin wakes the poller (a route stored a message);
* end of stdin stops it: the relay closed it, or the relay died. Ctrl-C is left to the relay,
  which stops this child after its own servers;
* if the child ends on its own, nothing would be broadcast any more, so the relay stops too,
  with an error and exit status 1.

Logs go to the relay's stderr (JSON, like the relay's own).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from userstatus_local.dynamodb import CLIENT_CONFIG
from userstatus_local.faults import Faults

logger = logging.getLogger("userstatus_local.event_source")

READY_LINE = b"READY\n"
START_TIMEOUT_SECONDS = 30.0
EXIT_GRACE_SECONDS = 2.0
STOP_TIMEOUT_SECONDS = 10.0
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class EventSourceStartError(RuntimeError):
    """The event source process exited or was not ready in time."""


class EventSourceProcess:
    """The relay's handle on the event source child: start, wake, stop."""

    def __init__(
        self,
        stream_arn: str,
        *,
        stage: str = "dev",
        failure_queue: Path | None = None,
        throttle_dynamodb: float = 0.0,
    ) -> None:
        self._stream_arn = stream_arn
        self._stage = stage
        self._failure_queue = failure_queue
        self._throttle_dynamodb = throttle_dynamodb
        self._process: subprocess.Popen[bytes] | None = None
        self._stdin: IO[bytes] | None = None
        self._lock = threading.Lock()

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start the child (inheriting this process's environment) and wait for READY."""
        process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [
                sys.executable,
                "-m",
                "userstatus_local.event_source",
                "--stage",
                self._stage,
                *(["--failure-queue", str(self._failure_queue)] if self._failure_queue else []),
                "--fault-throttle-dynamodb",
                str(self._throttle_dynamodb),
                self._stream_arn,
            ],
            cwd=_PACKAGE_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        ready = _read_ready(process, timeout)
        process.stdout.close()
        if not ready:
            # Its stdout ends as it exits, a moment before it can be reaped: wait for that.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(EXIT_GRACE_SECONDS)
            exited = process.poll() is not None
            process.kill()
            process.wait()
            problem = (
                f"exited with status {process.returncode}"
                if exited
                else f"was not ready in {timeout:g} s"
            )
            raise EventSourceStartError(
                f"the event source process {problem} (its log is above, on stderr)"
            )
        os.set_blocking(process.stdin.fileno(), False)
        self._process, self._stdin = process, process.stdin

    def wake(self) -> None:
        """Have the poller read the stream now; never blocks."""
        with self._lock:
            if self._stdin is None:
                return
            # A full pipe already holds a wake-up; a closed one means the child is gone (its
            # exit is logged by stop()).
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(self._stdin.fileno(), b"\n")

    def wait(self) -> int | None:
        """Block until the child exits; its status (None if it is not running)."""
        process = self._process
        return None if process is None else process.wait()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """Close the child's stdin and wait for it (killed after ``timeout``); its status."""
        with self._lock:
            stdin, self._stdin = self._stdin, None
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()
        process, self._process = self._process, None
        if process is None:
            return None
        try:
            status = process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the event source process did not stop in time; killed")
            process.kill()
            status = process.wait()
        if status:
            logger.warning("the event source process exited with status %d", status)
        return status


def _read_ready(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether the child printed READY before ``timeout`` (False if it exited first)."""
    assert process.stdout is not None
    descriptor = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    received = b""
    while not received.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([descriptor], [], [], remaining)[0]:
            return False
        chunk = os.read(descriptor, 64)
        if not chunk:
            return False
        received += chunk
    return received == READY_LINE


def serve(
    stream_arn: str,
    wakes: IO[bytes],
    ready: IO[bytes],
    *,
    stage: str = "dev",
    failure_queue: Path | None = None,
    faults: Faults | None = None,
) -> None:
    """Poll the stream into ``broadcast.handler`` until ``wakes`` reaches its end, with the
    stage's event source mapping settings and the broadcast function's timeout and memory;
    batches given up on are appended to ``failure_queue`` (JSON lines), as Lambda sends them to
    the stack's SQS failure queue."""
    import boto3

    from userstatus import broadcast, keys
    from userstatus.runtime import runtime
    from userstatus_local.stream_poller import StreamPoller
    from userstatus_stack.stages import STAGES

    config = STAGES[stage]
    if faults is not None:
        faults.install_dynamodb_throttling(runtime().messages._client)
    streams = boto3.client("dynamodbstreams", config=CLIENT_CONFIG)
    poller = StreamPoller(
        streams,
        stream_arn,
        broadcast.handler,
        batch_size=config.broadcast_batch_size,
        parallelization_factor=config.broadcast_parallelization_factor,
        partition_key=keys.MESSAGES.partition_key.name,
        # The event source mapping's MaximumRetryAttempts counts retries, not attempts.
        max_attempts=config.broadcast_retry_attempts + 1,
        timeout_seconds=config.broadcast_timeout_seconds,
        memory_mb=config.broadcast_memory_mb,
        bisect_on_error=config.broadcast_bisect_on_error,
        max_record_age_seconds=config.broadcast_max_record_age_seconds,
        on_failure=None if failure_queue is None else _appender(failure_queue),
    )
    poller.start()
    ready.write(READY_LINE)
    ready.flush()
    try:
        while os.read(wakes.fileno(), 4096):
            poller.wake()
    finally:
        poller.stop()


def _appender(path: Path) -> Callable[[dict[str, Any]], None]:
    """Append each failure to ``path`` as one JSON line."""

    def append(failure: dict[str, Any]) -> None:
        with path.open("a", encoding="utf-8") as queue:
            queue.write(json.dumps(failure) + "\n")

    return append


def main(argv: Sequence[str] | None = None) -> int:
    """Run until stdin ends; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m userstatus_local.event_source")
    parser.add_argument("stream_arn", help="the messages table's stream")
    parser.add_argument("--stage", default="dev", help="whose settings to poll with")
    parser.add_argument("--failure-queue", type=Path, help="append given-up batches here")
    parser.add_argument("--fault-throttle-dynamodb", type=float, default=0.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from userstatus.logs import configure_logging

    configure_logging()
    serve(
        args.stream_arn,
        sys.stdin.buffer,
        sys.stdout.buffer,
        stage=args.stage,
        failure_queue=args.failure_queue,
        faults=Faults(throttle_dynamodb=args.fault_throttle_dynamodb),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
