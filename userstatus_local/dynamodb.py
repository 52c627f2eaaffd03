"""The relay's DynamoDB: moto's server in a child process, or any endpoint given.

moto costs several milliseconds of CPU per call; in the relay's own process it would compete
with the HTTP and WebSocket servers for the GIL and one core (docs/performance.md, B3). The
child (``userstatus_local.moto_server``: moto's server with faster DynamoDB answers) is started
and stopped with the relay, and ends with it even if the relay is killed.

Tables are created from the key definitions in ``userstatus.keys`` (the ones the stack uses),
with a NEW_IMAGE stream on the messages table for the broadcaster.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from botocore.config import Config

from userstatus import keys

logger = logging.getLogger("userstatus_local.dynamodb")

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent

# The relay's own clients (creating tables, reading the stream): a few retries, like the SDK's.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})
MESSAGES_STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
MOTO_SERVER_MODULE = "userstatus_local.moto_server"
START_TIMEOUT_SECONDS = 30.0
_START_ATTEMPTS = 3


class EmbeddedDynamoDB:
    """moto's server (``python -m userstatus_local.moto_server``) as a child process on ``host``.

    ``port`` 0 picks a free port.
    """

    def __init__(self, host: str, port: int = 0) -> None:
        self._host = host
        self._port = port
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        """Start serving; return the port it listens on."""
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = self._port or _free_port(self._host)
            with tempfile.TemporaryFile() as errors:
                process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
                    [sys.executable, "-m", MOTO_SERVER_MODULE, "-H", self._host, "-p", str(port)],
                    cwd=_PACKAGE_ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    # Not in the terminal's process group: Ctrl-C reaches the relay, which stops
                    # this server after its own shutdown (which still uses it).
                    start_new_session=True,
                    # Safe here: the relay starts this before it starts any thread.
                    preexec_fn=_end_with_parent,
                )
                if _wait_until_listening(process, self._host, port):
                    self._process = process
                    return port
                errors.seek(0)
                output = errors.read().decode(errors="replace").strip()
            _stop(process)
            if self._port or attempt == _START_ATTEMPTS:
                raise RuntimeError(f"the embedded DynamoDB (moto) did not start: {output[-2000:]}")
            logger.info("moto could not use port %d; trying another", port)
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop serving."""
        if self._process is not None:
            _stop(self._process)
            self._process = None


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _wait_until_listening(process: subprocess.Popen[bytes], host: str, port: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _end_with_parent() -> None:
    """In the child: receive SIGTERM when the relay dies (Linux), so no server is left behind."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def ensure_tables(
    client: Any, messages_table: str, connections_table: str, publish_keys_table: str
) -> str:
    """Create the three tables if missing and make sure messages has a stream; its ARN."""
    _ensure_table(client, keys.CONNECTIONS.create_table_kwargs(connections_table))
    _ensure_table(client, keys.PUBLISH_KEYS.create_table_kwargs(publish_keys_table))
    kwargs = keys.MESSAGES.create_table_kwargs(messages_table)
    kwargs["StreamSpecification"] = MESSAGES_STREAM
    description = _ensure_table(client, kwargs)
    stream = description.get("StreamSpecification") or {}
    if not stream.get("StreamEnabled"):
        logger.info("enabling the stream of %s", messages_table)
        description = client.update_table(
            TableName=messages_table, StreamSpecification=MESSAGES_STREAM
        )["TableDescription"]
    elif stream.get("StreamViewType") not in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        raise RuntimeError(
            f"table {messages_table} streams {stream.get('StreamViewType')}; the broadcaster "
            "needs NEW_IMAGE or NEW_AND_OLD_IMAGES"
        )
    arn = description.get("LatestStreamArn")
    if not arn:
        raise RuntimeError(f"table {messages_table} has no stream")
    return str(arn)


def _ensure_table(client: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    name = kwargs["TableName"]
    try:
        description: dict[str, Any] = client.describe_table(TableName=name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        logger.info("creating table %s", name)
        client.create_table(**kwargs)
        client.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        description = client.describe_table(TableName=name)["Table"]
    return description
