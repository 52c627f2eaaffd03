"""The per-connection outbox of the relay's WebSocket server counts bytes, not characters."""

from __future__ import annotations

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
