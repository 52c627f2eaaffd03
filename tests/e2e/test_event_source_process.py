"""The event source child: it starts or says why not, and never outlives the relay."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.wire import TIMEOUT, wait_until
from userstatus_local.dynamodb import _free_port
from userstatus_local.environment import configure_environment
from userstatus_local.event_source import EventSourceProcess, EventSourceStartError
from userstatus_local.process import RelayProcess


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def event_source_of(relay: RelayProcess) -> int:
    """The process id of the relay's event source child."""
    for child in children_of(relay.process.pid):
        command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"userstatus_local.event_source" in command:
            return child
    raise AssertionError("the relay has no event source child")


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_an_event_source_that_cannot_reach_the_stream_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an environment pointing at a DynamoDB that is not there
    environment: dict[str, str] = {}
    nowhere = f"http://127.0.0.1:{_free_port('127.0.0.1')}"
    configure_environment(
        dynamodb_endpoint=nowhere,
        management_endpoint=f"{nowhere}/local",
        messages_table="messages",
        connections_table="connections",
        publish_keys_table="publish-keys",
        embedded=True,
        environ=environment,
    )
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    event_source = EventSourceProcess("arn:aws:dynamodb:us-east-1:000000000000:table/m/stream/x")
    # Then starting it fails with an error, not a hang
    started = time.monotonic()
    with pytest.raises(EventSourceStartError, match="exited with status 1"):
        event_source.start()
    assert time.monotonic() - started < TIMEOUT
    assert event_source.stop() is None


def test_children_end_with_a_killed_relay() -> None:
    relay = RelayProcess.start()
    try:
        children = children_of(relay.process.pid)
        # The embedded DynamoDB and the event source process
        assert len(children) == 2
        os.kill(relay.process.pid, signal.SIGKILL)
        relay.process.wait(TIMEOUT)
        wait_until(lambda: not any(alive(child) for child in children))
    finally:
        relay.stop()


def test_the_relay_stops_with_an_error_when_its_event_source_dies() -> None:
    relay = RelayProcess.start()
    try:
        # When the event source process ends on its own (here: killed)
        os.kill(event_source_of(relay), signal.SIGKILL)
        # Then the relay does not carry on without broadcasting: it stops, and says why
        exit_status = relay.process.wait(TIMEOUT)
        stderr = relay.stderr_tail(200)
    finally:
        relay.stop()
    assert exit_status == 1
    assert "the event source process exited with status -9; stopping the relay" in stderr
    assert "Traceback" not in stderr
