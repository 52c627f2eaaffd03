"""The relay's guard of API Gateway's 32 KB client frame and 128 KB message limits, byte by
byte."""

from __future__ import annotations

import struct

import pytest
from aiohttp import web, web_protocol

from tests.e2e.raw_websocket import OPCODE_CLOSE, OPCODE_TEXT, client_frame_header
from userstatus_local import frame_limit
from userstatus_local.frame_limit import FrameSizeGuard

LIMIT = 32 * 1024
MESSAGE_LIMIT = 4 * LIMIT
OPCODE_CONTINUATION = 0x0
OPCODE_PING = 0x9


class Recorder:
    """Stands in for aiohttp's frame reader: keeps every byte handed to it."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.eof = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.received += data
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True


def frame(opcode: int, payload: bytes, final: bool = True) -> bytes:
    header = bytearray(client_frame_header(opcode, len(payload)))
    if not final:
        header[0] &= 0x7F
    return bytes(header) + payload  # the mask is zero, so the payload is as sent


def guarded() -> tuple[Recorder, FrameSizeGuard, list[tuple[str, int]]]:
    inner, too_big = Recorder(), []
    guard = FrameSizeGuard(
        inner, LIMIT, lambda what, size: too_big.append((what, size)), MESSAGE_LIMIT
    )
    return inner, guard, too_big


def feed_in_chunks(guard: FrameSizeGuard, stream: bytes, size: int) -> None:
    for start in range(0, len(stream), size):
        guard.feed_data(stream[start : start + size])


# Lengths on either side of each header form (7-bit, 16-bit, 64-bit) and of the limit.
FRAMES_WITHIN = [
    frame(OPCODE_TEXT, b"x" * n) for n in (0, 1, 125, 126, 65_535 // 2, LIMIT - 1, LIMIT)
] + [
    frame(OPCODE_TEXT, b"a" * 20_000, final=False),
    frame(OPCODE_CONTINUATION, b"b" * 20_000, final=False),
    frame(OPCODE_CONTINUATION, b"c" * 20_000),
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 14, 1000, 65_536, 1 << 20])
def test_frames_within_the_limit_are_handed_on_unchanged_however_they_arrive(chunk: int) -> None:
    inner, guard, too_big = guarded()
    stream = b"".join(FRAMES_WITHIN)
    feed_in_chunks(guard, stream, chunk)
    assert bytes(inner.received) == stream
    assert too_big == []
    assert not guard.tripped


@pytest.mark.parametrize("chunk", [1, 5, 1000, 1 << 20])
def test_a_frame_over_the_limit_and_every_data_frame_after_it_are_held_back(chunk: int) -> None:
    inner, guard, too_big = guarded()
    before = frame(OPCODE_TEXT, b"before")
    client_close = frame(OPCODE_CLOSE, struct.pack("!H", 1000))
    stream = b"".join(
        [
            before,
            frame(OPCODE_TEXT, b"y" * (LIMIT + 1)),
            frame(OPCODE_TEXT, b"after"),
            client_close,
            frame(OPCODE_TEXT, b"later"),
        ]
    )
    feed_in_chunks(guard, stream, chunk)
    assert too_big == [("frame", LIMIT + 1)]
    assert guard.tripped
    # The function sees the frame before, and aiohttp's reader the client's close, nothing else.
    assert bytes(inner.received) == before + client_close


def test_an_oversized_fragment_of_a_message_trips_the_guard() -> None:
    inner, guard, too_big = guarded()
    first = frame(OPCODE_TEXT, b"a" * 100, final=False)
    guard.feed_data(first + frame(OPCODE_CONTINUATION, b"b" * (LIMIT + 1)))
    assert too_big == [("frame", LIMIT + 1)]
    assert bytes(inner.received) == first


@pytest.mark.parametrize("chunk", [1, 1000, 1 << 20])
def test_the_fragment_that_takes_a_message_over_128_kb_trips_the_guard(chunk: int) -> None:
    inner, guard, too_big = guarded()
    # A whole message at the limit, then one a byte over it, with a ping between fragments.
    at_limit = [frame(OPCODE_TEXT, b"a" * LIMIT, final=False)]
    at_limit += [frame(OPCODE_CONTINUATION, b"a" * LIMIT, final=False)] * 2
    at_limit += [frame(OPCODE_CONTINUATION, b"a" * LIMIT)]
    over = [frame(OPCODE_TEXT, b"b" * LIMIT, final=False), frame(OPCODE_PING, b"p")]
    over += [frame(OPCODE_CONTINUATION, b"b" * LIMIT, final=False)] * 3
    last = frame(OPCODE_CONTINUATION, b"b")
    client_close = frame(OPCODE_CLOSE, struct.pack("!H", 1000))
    feed_in_chunks(guard, b"".join([*at_limit, *over, last, client_close]), chunk)
    assert too_big == [("message", MESSAGE_LIMIT + 1)]
    assert bytes(inner.received) == b"".join([*at_limit, *over, client_close])


def test_each_message_is_counted_from_its_first_frame() -> None:
    inner, guard, too_big = guarded()
    stream = b"".join(frame(OPCODE_TEXT, b"x" * LIMIT) for _ in range(10))
    guard.feed_data(stream)
    assert too_big == []
    assert bytes(inner.received) == stream


def test_a_header_announcing_a_terabyte_trips_the_guard_before_any_payload() -> None:
    inner, guard, too_big = guarded()
    guard.feed_data(client_frame_header(OPCODE_TEXT, 1 << 40))
    assert too_big == [("frame", 1 << 40)]
    assert inner.received == b""


def test_end_of_stream_reaches_the_reader() -> None:
    inner, guard, _ = guarded()
    guard.feed_eof()
    assert inner.eof


def test_the_pinned_aiohttp_has_what_the_guard_relies_on() -> None:
    frame_limit.check_aiohttp_internals()


def test_an_aiohttp_that_changed_what_the_guard_relies_on_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slots = tuple(s for s in web_protocol.RequestHandler.__slots__ if s != "_message_tail")
    monkeypatch.setattr(web_protocol.RequestHandler, "__slots__", slots)
    monkeypatch.setattr(web.WebSocketResponse, "_post_start", lambda self, request: None)
    with pytest.raises(frame_limit.AiohttpChanged) as changed:
        frame_limit.check_aiohttp_internals()
    message = str(changed.value)
    assert "written against aiohttp 3.14.5" in message
    assert "RequestHandler has no _message_tail" in message
    assert "WebSocketResponse._post_start takes ('self', 'request')" in message
