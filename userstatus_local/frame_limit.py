"""API Gateway's 32 KB limit on each WebSocket frame a client sends.

API Gateway's WebSocket quotas: "WebSocket frame size: 32 KB", "Message payload size: 128 KB";
"messages larger than 32 KB must be split into multiple frames, each 32 KB or smaller [...]
If a larger message (or larger frame size) is received, the connection is closed with code
1009" (docs.aws.amazon.com/apigateway/latest/developerguide/
apigateway-execution-service-websocket-limits-table.html).

aiohttp limits only the assembled message (``max_msg_size``), and its frame reader is compiled,
so ``FrameLimitedWebSocket`` puts ``FrameSizeGuard`` in front of it: the guard reads only frame
headers, jumping over payloads, and hands the bytes on unchanged. At the first frame whose
payload is over the frame limit, or that takes its message's fragments over the message limit,
it hands on nothing of that frame nor any later data frame (the handler never sees them), only
control frames (the client's close), and tells the socket, which closes with 1009.

The guard, not aiohttp's ``max_msg_size``, enforces the message limit: aiohttp's reader fails on
an oversized message, so its close cannot read the client's close frame and drops the socket at
once; data the client is still sending then meets a closed socket, the kernel answers with a
reset, and the client's kernel discards the unread 1009 close frame (the client saw code None).
The guard keeps the reader working, so the close handshake completes.

Installing the guard uses two private attributes of aiohttp's ``RequestHandler`` and the
private ``WebSocketResponse._post_start``; ``check_aiohttp_internals`` refuses an aiohttp that
changed them, naming what changed, rather than letting the limit silently lapse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, web, web_protocol

from userstatus_local.pinned_internals import changed

MAX_CLIENT_FRAME_BYTES = 32 * 1024
MAX_CLIENT_MESSAGE_BYTES = 128 * 1024

_LONGEST_HEADER = 14  # 2 bytes, an 8-byte length, a 4-byte mask


class AiohttpChanged(RuntimeError):
    """The installed aiohttp no longer has what ``FrameLimitedWebSocket`` relies on."""


def check_aiohttp_internals() -> None:
    """Raise ``AiohttpChanged`` naming what is missing or changed in the installed aiohttp."""
    from aiohttp import __version__

    problems = [
        f"RequestHandler has no {name}"
        for name in ("_payload_parser", "_message_tail")
        if name not in web_protocol.RequestHandler.__slots__
    ]
    problems += changed(
        [(web.WebSocketResponse, "_post_start", ("self", "request", "protocol", "writer"))]
    )
    if problems:
        raise AiohttpChanged(
            f"userstatus_local.frame_limit was written against aiohttp 3.14.5, and aiohttp "
            f"{__version__} changed what it relies on: {'; '.join(problems)}. "
            "Update FrameLimitedWebSocket or pin aiohttp back."
        )


class FrameSizeGuard:
    """Sits between aiohttp's protocol and its WebSocket frame reader (``inner``)."""

    def __init__(
        self,
        inner: Any,
        limit: int,
        on_too_big: Callable[[str, int], None],
        message_limit: int = MAX_CLIENT_MESSAGE_BYTES,
    ) -> None:
        self._inner = inner
        self._limit = limit
        self._message_limit = message_limit
        self._on_too_big = on_too_big
        # Payload bytes of the data message being received so far (its fragments).
        self._message_bytes = 0
        # Payload bytes of the current frame still to come, and whether they are handed on.
        self._payload_left = 0
        self._handing_on = True
        # The start of a frame header that the last chunk cut short, held back.
        self._held = b""
        self.tripped = False

    def feed_eof(self) -> None:
        self._inner.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._held:
            data, self._held = self._held + bytes(data), b""
        if self.tripped:
            return self._feed_control_frames_only(data)
        position, end = 0, len(data)
        while position < end:
            if self._payload_left:
                step = min(self._payload_left, end - position)
                self._payload_left -= step
                position += step
                continue
            header = _header(data, position)
            if header is None:
                self._held = bytes(data[position:])
                return self._hand_on(data[:position])
            header_length, opcode, payload_length = header
            if opcode in (0x1, 0x2):
                self._message_bytes = payload_length
            elif opcode == 0x0:
                self._message_bytes += payload_length
            too_big = (
                ("frame", payload_length)
                if payload_length > self._limit
                else ("message", self._message_bytes)
                if opcode < 0x8 and self._message_bytes > self._message_limit
                else None
            )
            if too_big is not None:
                self.tripped = True
                self._on_too_big(*too_big)
                before = self._hand_on(data[:position])
                after = self._feed_control_frames_only(data[position:])
                return before if before[0] else after
            position += header_length
            self._payload_left = payload_length
        return self._hand_on(data)

    def _feed_control_frames_only(self, data: bytes) -> tuple[bool, bytes]:
        """After the limit was passed: drop data frames, hand on control frames whole."""
        kept = bytearray()
        position, end = 0, len(data)
        while position < end:
            if self._payload_left:
                step = min(self._payload_left, end - position)
                if self._handing_on:
                    kept += data[position : position + step]
                self._payload_left -= step
                position += step
                continue
            header = _header(data, position)
            if header is None:
                self._held = bytes(data[position:])
                break
            header_length, opcode, payload_length = header
            self._handing_on = opcode >= 0x8 and payload_length <= self._limit
            if self._handing_on:
                kept += data[position : position + header_length]
            position += header_length
            self._payload_left = payload_length
        return self._hand_on(bytes(kept))

    def _hand_on(self, data: bytes) -> tuple[bool, bytes]:
        if not data:
            return False, b""
        result: tuple[bool, bytes] = self._inner.feed_data(data)
        return result


def _header(data: bytes, position: int) -> tuple[int, int, int] | None:
    """(header length, opcode, payload length) of the frame at ``position``; None if the
    header is not complete in ``data``."""
    available = len(data) - position
    if available < 2:
        return None
    opcode = data[position] & 0x0F
    second = data[position + 1]
    masked = 4 if second & 0x80 else 0
    length = second & 0x7F
    extended = 2 if length == 126 else 8 if length == 127 else 0
    header_length = 2 + extended + masked
    if available < header_length:
        return None
    if extended:
        length = int.from_bytes(data[position + 2 : position + 2 + extended], "big")
    return header_length, opcode, length


class FrameLimitedWebSocket(web.WebSocketResponse):
    """A ``WebSocketResponse`` that closes with 1009 (message too big) at the first client
    frame over ``max_frame_bytes`` or message over ``max_message_bytes``, as API Gateway does.
    ``on_too_big`` is told which ("frame" or "message") and its size."""

    def __init__(
        self,
        *,
        max_frame_bytes: int = MAX_CLIENT_FRAME_BYTES,
        max_message_bytes: int = MAX_CLIENT_MESSAGE_BYTES,
        on_too_big: Callable[[str, int], None] = lambda what, size: None,
        **options: Any,
    ) -> None:
        # aiohttp's own message limit stays as a backstop above the guard's.
        options.setdefault("max_msg_size", max_message_bytes + 1)
        super().__init__(**options)
        self._max_frame_bytes = max_frame_bytes
        self._max_message_bytes = max_message_bytes
        self._on_too_big = on_too_big
        # The close started by an oversized frame, held so the task is not collected mid-way.
        self._closing_for_size: asyncio.Task[bool] | None = None

    def _post_start(self, request: web.BaseRequest, protocol: Any, writer: Any) -> None:
        handler = request.protocol
        # Bytes that arrived between the handshake and now are fed through the guard too.
        early, handler._message_tail = handler._message_tail, b""
        super()._post_start(request, protocol, writer)
        guard = FrameSizeGuard(
            handler._payload_parser, self._max_frame_bytes, self._too_big, self._max_message_bytes
        )
        handler._payload_parser = guard
        if early:
            guard.feed_data(early)

    def _too_big(self, what: str, size: int) -> None:
        self._on_too_big(what, size)
        self._closing_for_size = asyncio.get_running_loop().create_task(
            self.close(code=WSCloseCode.MESSAGE_TOO_BIG, message=b"Message too big")
        )
