"""``tail``: history then live messages, acknowledgements and errors, reconnecting after drops."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from tests.client.streams import LineSink
from tests.fakes.fake_relay import FakeRelay
from userstatus_client import LogEntry, RelayRejectedError, send
from userstatus_client.tail import _Printer, follow, format_entry, parse_duration


class Follower:
    """Runs ``follow()`` on its own event loop in a thread until stopped."""

    def __init__(self, relay: FakeRelay, site: str = "tst", since: float = 3600.0) -> None:
        self.out = LineSink()
        self.err = LineSink()
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        coroutine = follow(
            site,
            url=relay.url,
            ws_url=relay.ws_url,
            since=since,
            out=self.out,
            err=self.err,
            utc=True,
            reconnect_delay=0.1,
            max_reconnect_delay=0.4,
        )
        self._thread = threading.Thread(target=self._run, args=(coroutine,), daemon=True)
        self._thread.start()
        self._started.wait(5)

    def _run(self, coroutine: object) -> None:
        self._task = self._loop.create_task(coroutine)  # type: ignore[arg-type]
        self._started.set()
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self._loop.close()

    def stop(self) -> None:
        assert self._task is not None
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(5)
        assert not self._thread.is_alive()


@pytest.fixture
def follower(relay: FakeRelay) -> Iterator[Follower]:
    follower = Follower(relay)
    yield follower
    follower.stop()


def printed_messages(sink: LineSink) -> list[str]:
    return [line[15:] for line in sink.lines]


def test_tail_prints_history_then_live_messages(relay: FakeRelay) -> None:
    # Given two messages stored before the follower starts, and one that is too old
    now = time.time()
    relay.store("tst", "too old", timestamp=now - 7200)
    relay.store("tst", "Opening dome", "info", timestamp=now - 120)
    relay.store("tst", "Wind high", "warning", timestamp=now - 60)
    follower = Follower(relay)
    try:
        # When it is connected and a new message is sent
        assert relay.wait_for(lambda: relay.connections("tst") == 1)
        follower.out.wait_for_line(lambda line: "Wind high" in line)
        send("tst", "Slewing to M31", "error", url=relay.url)
        follower.out.wait_for_line(lambda line: "Slewing to M31" in line)
        send("other", "not for us", url=relay.url)
        send("tst", "last", url=relay.url)
        follower.out.wait_for_line(lambda line: line.endswith("last"))
    finally:
        follower.stop()

    # Then history comes first, oldest first, each message once, as hh:mm LEVEL message
    expected_time = time.strftime("%H:%M", time.gmtime(now - 60))
    assert follower.out.lines[1] == f"{expected_time} WARNING  Wind high"
    assert printed_messages(follower.out) == ["Opening dome", "Wind high", "Slewing to M31", "last"]
    assert follower.out.lines[2][6:14] == "ERROR   "


def test_tail_ignores_acknowledgements_and_reports_error_frames(
    relay: FakeRelay, follower: Follower
) -> None:
    assert relay.wait_for(lambda: relay.connections("tst") == 1)
    relay.send_frame("tst", {"action": "subscribed", "message": "not a log message"})
    relay.send_frame("tst", {"error": "Forbidden", "message": "not a log message either"})
    send("tst", "real message", url=relay.url)

    follower.out.wait_for_line(lambda line: "real message" in line)
    follower.err.wait_for_line(lambda line: "relay error: Forbidden" in line)
    assert printed_messages(follower.out) == ["real message"]


def test_tail_reconnects_after_the_socket_is_dropped(relay: FakeRelay, follower: Follower) -> None:
    assert relay.wait_for(lambda: relay.connections("tst") == 1)
    send("tst", "before the drop", url=relay.url)
    follower.out.wait_for_line(lambda line: "before the drop" in line)

    relay.drop_websockets()
    follower.err.wait_for_line(lambda line: "reconnected" in line)
    send("tst", "after the drop", url=relay.url)

    follower.out.wait_for_line(lambda line: "after the drop" in line)
    assert printed_messages(follower.out) == ["before the drop", "after the drop"]


def test_tail_survives_a_relay_restart_and_prints_what_it_missed_once(
    relay: FakeRelay, follower: Follower
) -> None:
    # Given a follower that has printed one message
    assert relay.wait_for(lambda: relay.connections("tst") == 1)
    send("tst", "before the restart", url=relay.url)
    follower.out.wait_for_line(lambda line: "before the restart" in line)

    # When the relay goes down and comes back, and a message is stored at once (possibly
    # before the follower has reconnected)
    relay.stop()
    follower.err.wait_for_line(lambda line: "reconnecting in" in line)
    relay.start()
    send("tst", "during the reconnect", url=relay.url)
    follower.err.wait_for_line(lambda line: "reconnected" in line)
    send("tst", "after the restart", url=relay.url)

    # Then it is printed exactly once, from history or live, in order
    follower.out.wait_for_line(lambda line: "after the restart" in line)
    assert printed_messages(follower.out) == [
        "before the restart",
        "during the reconnect",
        "after the restart",
    ]


def test_tail_keeps_retrying_until_the_relay_is_up(relay: FakeRelay) -> None:
    relay.stop()
    follower = Follower(relay)
    try:
        follower.err.wait_for_line(lambda line: "reconnecting in" in line)
        relay.store("tst", "stored while nobody listened")
        relay.start()
        follower.out.wait_for_line(lambda line: "stored while nobody listened" in line)
    finally:
        follower.stop()


def test_a_site_refused_at_the_handshake_ends_tail_with_the_servers_reason(
    relay: FakeRelay,
) -> None:
    out, err = LineSink(), LineSink()
    following = follow(
        "bad site", url=relay.url, ws_url=relay.ws_url, out=out, err=err, reconnect_delay=0.01
    )

    with pytest.raises(RelayRejectedError) as refused:
        asyncio.run(asyncio.wait_for(following, timeout=10))  # a bound, should it reconnect

    assert refused.value.status == 400
    assert refused.value.server_message == "site must be 1-64 letters, digits, '-' or '_'"
    assert relay.handshake_attempts == 1
    assert err.lines == []


@pytest.mark.parametrize("status", [503, 500, 429])
def test_tail_keeps_reconnecting_when_the_handshake_fails_with_5xx_or_429(
    relay: FakeRelay, status: int
) -> None:
    relay.fail_next_handshakes(2, status, "try again later")
    follower = Follower(relay)
    try:
        assert relay.wait_for(lambda: relay.connections("tst") == 1)
        send("tst", "after the refusals", url=relay.url)
        follower.out.wait_for_line(lambda line: "after the refusals" in line)
    finally:
        follower.stop()
    refusals = [line for line in follower.err.lines if f"HTTP {status}" in line]
    assert len(refusals) == 2
    assert "try again later; reconnecting in" in refusals[0]
    assert relay.handshake_attempts == 3


def test_a_history_request_refused_with_4xx_ends_tail(relay: FakeRelay) -> None:
    relay.fail_next(1, 403, "Forbidden")
    out, err = LineSink(), LineSink()
    following = follow("tst", url=relay.url, ws_url=relay.ws_url, out=out, err=err)

    with pytest.raises(RelayRejectedError, match="Forbidden"):
        asyncio.run(asyncio.wait_for(following, timeout=10))
    assert relay.handshake_attempts == 1


def test_follow_refuses_a_websocket_url_of_another_scheme(relay: FakeRelay) -> None:
    following = follow("tst", url=relay.url, ws_url=relay.url, out=LineSink(), err=LineSink())
    with pytest.raises(ValueError, match="must start with ws:// or wss://"):
        asyncio.run(asyncio.wait_for(following, timeout=10))


def test_a_message_in_history_and_live_is_printed_once() -> None:
    out = LineSink()
    printer = _Printer(out, colour=False, utc=True)
    one = LogEntry("tst", "one", "info", 1604514063.7)
    two = LogEntry("tst", "two", "info", 1604514064.2)
    printer.history([one, two])

    printer.live(LogEntry("tst", "two", "info", 1604514064.0))  # the live copy, whole seconds
    printer.live(LogEntry("tst", "three", "info", 1604514065.0))
    printer.live(LogEntry("tst", "two", "info", 1604514066.0))  # a later, new "two"
    printer.history([two, LogEntry("tst", "three", "info", 1604514065.3)])  # refetch after a drop

    assert printed_messages(out) == ["one", "two", "three", "two"]


def test_format_entry_colours_the_level_and_indents_continuation_lines() -> None:
    entry = LogEntry("tst", "Traceback:\n  line 1", "critical", 1604514063.0)

    plain = format_entry(entry, utc=True)
    coloured = format_entry(entry, colour=True, utc=True)

    assert plain == "18:21 CRITICAL Traceback:\n                 line 1"
    assert coloured.startswith("18:21 \033[1;31mCRITICAL\033[0m Traceback:")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("2D", 172800), ("0.5h", 1800)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1y", "-1h", "1h30m"])
def test_parse_duration_refuses_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
