"""The per-connection outbox of the relay's WebSocket server counts bytes, not characters."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from userstatus_local.events import WebSocketConnectionInfo
from userstatus_local.invoke import Invoker
from userstatus_local.websocket_server import MAX_OUTBOX_BYTES, Connection, WebSocketRelay


def unused_handler(event: Any, context: Any) -> None:
    raise AssertionError("no handler is invoked here")


def new_connection() -> Connection:
    info = WebSocketConnectionInfo("id-1=", "127.0.0.1", "127.0.0.1", "test", 0)
    return Connection(info=info, socket=web.WebSocketResponse())


def test_outbox_limit_counts_utf8_bytes_of_text_frames() -> None:
    with ThreadPoolExecutor(1) as executor:
        relay = WebSocketRelay(unused_handler, Invoker(executor))
        # Given a text frame under the limit in characters but over it in UTF-8 bytes
        frame = "é" * (MAX_OUTBOX_BYTES // 2 + 1)
        assert len(frame) < MAX_OUTBOX_BYTES < len(frame.encode())
        connection = new_connection()

        # Then it is refused and the client dropped
        assert not relay._enqueue(connection, frame)
        assert connection.dropped

        # And a frame that fits is counted in bytes
        connection = new_connection()
        assert relay._enqueue(connection, "é" * 10)
        assert connection.outbox_bytes == 20
        assert relay._enqueue(connection, b"\x00" * 5)
        assert connection.outbox_bytes == 25


class RecordingSocket:
    """Stands in for the aiohttp WebSocket: records the frames written, or fails to write."""

    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[str | bytes] = []
        self.error = error

    async def send_str(self, frame: str) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(frame)

    async def send_bytes(self, frame: bytes) -> None:
        await self.send_str(frame)  # type: ignore[arg-type]


class BufferedTransport:
    """A transport with ``buffered`` bytes not yet taken by the kernel."""

    def __init__(self, buffered: int) -> None:
        self.buffered = buffered

    def get_write_buffer_size(self) -> int:
        return self.buffered


def deliver_all(
    frames: list[str],
    *,
    buffered: int = 0,
    queued: tuple[str, ...] = (),
    error: Exception | None = None,
) -> tuple[list[bool], Connection, RecordingSocket]:
    """Post ``frames`` to one connection whose outbox already holds ``queued``."""
    socket = RecordingSocket(error)
    info = WebSocketConnectionInfo("id-1=", "127.0.0.1", "127.0.0.1", "test", 0)
    connection = Connection(info=info, socket=socket, transport=BufferedTransport(buffered))  # type: ignore[arg-type]

    async def run() -> list[bool]:
        with ThreadPoolExecutor(1) as executor:
            relay = WebSocketRelay(unused_handler, Invoker(executor))
            for frame in queued:
                assert relay._enqueue(connection, frame)
            return [await relay._deliver(connection, frame) for frame in frames]

    return asyncio.run(run()), connection, socket


def queued_frames(connection: Connection) -> list[str | bytes]:
    frames = []
    while not connection.outbox.empty():
        frames.append(connection.outbox.get_nowait()[0])
    return frames


def test_a_frame_to_a_client_that_keeps_up_is_written_before_the_post_is_answered() -> None:
    answers, connection, socket = deliver_all(["one", "two", "three"])
    assert answers == [True, True, True]
    assert socket.sent == ["one", "two", "three"]
    assert queued_frames(connection) == []
    assert connection.outbox_bytes == 0


def test_a_frame_behind_queued_frames_is_queued_after_them_in_order() -> None:
    answers, connection, socket = deliver_all(["third"], queued=["first", "second"])
    assert answers == [True]
    assert socket.sent == []
    assert queued_frames(connection) == ["first", "second", "third"]


def test_a_frame_to_a_client_with_unsent_bytes_is_queued() -> None:
    answers, connection, socket = deliver_all(["one"], buffered=1)
    assert answers == [True]
    assert socket.sent == []
    assert queued_frames(connection) == ["one"]
    assert connection.outbox_bytes == 3


def test_a_frame_the_closing_socket_cannot_take_is_refused_and_uncounted() -> None:
    answers, connection, _socket = deliver_all(["one"], error=ConnectionResetError())
    assert answers == [False]
    assert connection.outbox_bytes == 0
