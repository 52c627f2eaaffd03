"""The relay as a child process, for tests and benchmarks: start, wait until ready, stop.

``RelayProcess.start()`` runs ``python -m userstatus_local`` on free ports from the repository
root, waits for its ``READY`` line and parses it; ``stop()`` sends SIGINT (Ctrl-C) and waits,
killing it only if it does not stop in time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


class RelayStartError(RuntimeError):
    """The relay exited or did not print its READY line in time."""


@dataclass
class RelayProcess:
    """A running relay child process and where to reach it."""

    process: subprocess.Popen[bytes]
    http_url: str
    ws_url: str
    dynamodb_url: str
    messages_table: str
    connections_table: str
    publish_keys_table: str
    failure_queue: Path
    stdout_path: Path
    stderr_path: Path
    _files: list[IO[bytes]] = field(default_factory=list, repr=False)

    @classmethod
    def start(
        cls, *extra_args: str, timeout: float = 30.0, env: dict[str, str] | None = None
    ) -> Self:
        """Start ``python -m userstatus_local --http-port 0 --ws-port 0`` and wait for READY."""
        logs = Path(tempfile.mkdtemp(prefix="userstatus-relay-"))
        stdout_path, stderr_path = logs / "stdout.log", logs / "stderr.log"
        stdout, stderr = stdout_path.open("wb"), stderr_path.open("wb")
        command = [sys.executable, "-m", "userstatus_local", "--http-port", "0", "--ws-port", "0"]
        if "--failure-queue" not in extra_args:
            # In the directory ``stop()`` removes, so a relay killed by a test leaves nothing.
            command += ["--failure-queue", str(logs / "failure-queue.jsonl")]
        process = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
            [*command, *extra_args],
            cwd=REPOSITORY_ROOT,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        deadline = time.monotonic() + timeout
        while True:
            fields = _ready_fields(stdout_path.read_text(errors="replace"))
            if fields is not None:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                stdout.close()
                stderr.close()
                error = RelayStartError(
                    f"relay exited with {process.returncode} or was not ready in {timeout} s; "
                    f"stderr:\n{_tail(stderr_path)}"
                )
                shutil.rmtree(logs, ignore_errors=True)
                raise error
            time.sleep(0.05)
        return cls(
            process=process,
            http_url=fields["http"],
            ws_url=fields["ws"],
            dynamodb_url=fields["dynamodb"],
            messages_table=fields["messages_table"],
            connections_table=fields["connections_table"],
            publish_keys_table=fields["keys_table"],
            failure_queue=Path(fields["failure_queue"]),
            stdout_path=stdout_path,
            stderr_path=stderr_path,
            _files=[stdout, stderr],
        )

    def stop(self, timeout: float = 15.0) -> int:
        """Ctrl-C the relay and wait for it; kill it if it hangs. Its exit status."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            return self.process.returncode
        finally:
            for file in self._files:
                file.close()
            shutil.rmtree(self.stdout_path.parent, ignore_errors=True)

    def log_records(self) -> list[dict[str, Any]]:
        """Every JSON log line the relay has written to stderr so far, parsed (others skipped)."""
        records = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def stderr_tail(self, lines: int = 40) -> str:
        """The last lines the relay wrote to stderr (its JSON logs)."""
        return _tail(self.stderr_path, lines)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _ready_fields(output: str) -> dict[str, str] | None:
    for line in output.splitlines():
        if line.startswith("READY "):
            return dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
    return None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"
