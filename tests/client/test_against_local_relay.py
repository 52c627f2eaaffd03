"""End to end: the client against the real local relay (``python -m userstatus_local``).

Starts the relay as a child process on free ports, follows a site with ``userstatus tail``,
then sends with ``send()`` and ``UserStatusHandler`` and expects both lines printed live.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.client.streams import LineReader
from userstatus_client import UserStatusHandler, send

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LocalRelay:
    url: str
    ws_url: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def local_relay() -> Iterator[LocalRelay]:
    http_port, ws_port = free_port(), free_port()
    process = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
        [
            sys.executable,
            "-m",
            "userstatus_local",
            "--http-port",
            str(http_port),
            "--ws-port",
            str(ws_port),
        ],
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    output = LineReader(process.stdout)
    try:
        output.wait_for("READY ", timeout=60)
        yield LocalRelay(f"http://127.0.0.1:{http_port}", f"ws://127.0.0.1:{ws_port}")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_send_and_handler_records_reach_tail(
    local_relay: LocalRelay, client_env: dict[str, str]
) -> None:
    site = f"e2e-{int(time.time())}"
    stored = send(site, "Opening dome", "info", url=local_relay.url)
    assert (stored.site, stored.message, stored.log_level) == (site, "Opening dome", "info")

    env = {**client_env, "USERSTATUS_URL": local_relay.url, "USERSTATUS_WS_URL": local_relay.ws_url}
    tail = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-m", "userstatus_client", "tail", "--site", site, "--since", "10m"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tail.stdout is not None
    out = LineReader(tail.stdout)
    logger = logging.getLogger("observatory.e2e")
    logger.propagate = False
    handler = UserStatusHandler(site, local_relay.url)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger.addHandler(handler)
    try:
        out.wait_for("Opening dome", timeout=20)
        # the socket is open once history has printed; live messages follow
        send(site, "Slewing to M31", "warning", url=local_relay.url)
        logger.error("Dome fault")
        handler.flush()
        out.wait_for("Slewing to M31", timeout=20)
        out.wait_for("Dome fault", timeout=20)
    finally:
        logger.removeHandler(handler)
        handler.close()
        tail.send_signal(signal.SIGINT)
        status = tail.wait(10)

    assert [line[6:] for line in out.lines] == [
        "INFO     Opening dome",
        "WARNING  Slewing to M31",
        "ERROR    observatory.e2e: Dome fault",
    ]
    assert handler.stats().sent == 1
    assert status == 130
