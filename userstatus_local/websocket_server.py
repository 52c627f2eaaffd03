"""The WebSocket API and its management API, on one port.

* ``GET /?site=S`` upgraded to a WebSocket: ``$connect``, every frame and ``$disconnect`` become
  API Gateway WebSocket events for the WebSocket handler. A non-2xx answer to ``$connect``
  rejects the handshake with that status; a client frame over 32 KB or a message over 128 KB
  closes the connection with 1009, as API Gateway does (``userstatus_local.frame_limit``).
* A posted frame is written at once to a client that keeps up; otherwise it waits in the
  client's outbox, written by one task per connection, so a client that reads slowly or not
  at all never holds up a PostToConnection (nor the broadcast to the others). A client whose
  outbox passes ``MAX_OUTBOX_BYTES`` or whose socket accepts nothing for
  ``SEND_TIMEOUT_SECONDS`` is dropped (its transport aborted, ``$disconnect`` run, a warning
  logged with the frames it lost), and posts to it answer 410 like API Gateway's for a
  connection it has dropped.
* ``POST``, ``GET`` and ``DELETE /@connections/{id}`` (also under a stage prefix,
  ``/{stage}/@connections/{id}``): API Gateway's management API, so the broadcaster's posts
  reach real WebSocket clients. As in API Gateway, a call needs a valid SigV4 signature of the
  functions' credentials (``userstatus_local.management_auth``; 403 otherwise), and a
  connection can be posted to only once its ``$connect`` has answered 2xx: before that, and for
  gone or unknown ids, the answer is 410 ``{"message": "Gone"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from userstatus_local.events import (
    WebSocketConnectionInfo,
    new_connection_id,
    websocket_event,
    websocket_route,
)
from userstatus_local.faults import Faults
from userstatus_local.frame_limit import (
    MAX_CLIENT_FRAME_BYTES,
    FrameLimitedWebSocket,
    check_aiohttp_internals,
)
from userstatus_local.invoke import HandlerCrashed, Invoker, LambdaHandler
from userstatus_local.limits import IDLE_TIMEOUT_SECONDS, MAX_CONNECTION_SECONDS
from userstatus_local.management_auth import ManagementAuth

logger = logging.getLogger("userstatus_local.websocket")

# API Gateway's limits: 128 KB a message (and a posted message), 32 KB a client frame
# (MAX_CLIENT_FRAME_BYTES, with its source in userstatus_local.frame_limit).
MAX_FRAME_BYTES = 128 * 1024
# A client may have this many bytes of frames waiting beyond what its socket buffers hold.
MAX_OUTBOX_BYTES = 1024 * 1024
# A client whose socket accepts nothing for this long is dropped.
SEND_TIMEOUT_SECONDS = 5.0
# Closing waits this long for the client's close frame, then aborts the connection.
CLOSE_TIMEOUT_SECONDS = 2.0

FUNCTION_NAME = "userstatus-local-websocket"

Frame = str | bytes


@dataclass
class Connection:
    """One WebSocket client, known from the start of its $connect; postable (``accepted``) once
    the handshake has completed."""

    info: WebSocketConnectionInfo
    socket: web.WebSocketResponse
    transport: asyncio.Transport | None = None
    accepted: bool = False
    last_active_ms: int = 0
    # Each frame with its size in bytes (UTF-8 for text), counted once.
    outbox: asyncio.Queue[tuple[Frame, int]] = field(default_factory=asyncio.Queue)
    outbox_bytes: int = 0
    dropped: bool = False
    # time.monotonic() of the handshake and of the last data frame in either direction.
    opened_at: float = field(default_factory=time.monotonic)
    last_data_at: float = field(default_factory=time.monotonic)

    def abort(self) -> None:
        """Cut the TCP connection at once (no close handshake)."""
        if self.transport is not None:
            self.transport.abort()


class WebSocketRelay:
    """Serves WebSocket clients through the WebSocket handler and posts to them on request."""

    def __init__(
        self,
        handler: LambdaHandler,
        invoker: Invoker,
        on_stored: Callable[[], None] = lambda: None,
        disconnect_invoker: Invoker | None = None,
        auth: ManagementAuth | None = None,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        max_connection_seconds: float = MAX_CONNECTION_SECONDS,
        faults: Faults | None = None,
    ) -> None:
        self._faults = faults or Faults()
        self._idle_timeout = idle_timeout
        self._max_connection_seconds = max_connection_seconds
        self._handler = handler
        # None only for tests of other behaviour: the relay always checks signatures.
        self._auth = auth
        self._invoker = invoker
        # $disconnect has no client waiting on it: a lane of its own keeps a burst of them
        # (thousands of clients leaving) from queueing the $connect and frames of others.
        self._disconnect_invoker = disconnect_invoker or invoker
        self._on_stored = on_stored
        self._connections: dict[str, Connection] = {}

    def application(self) -> web.Application:
        """The aiohttp application for the WebSocket port."""
        check_aiohttp_internals()
        app = web.Application(client_max_size=MAX_FRAME_BYTES + 1024)
        app.router.add_get("/", self.serve_websocket)
        for prefix in ("", "/{stage}"):
            path = prefix + "/@connections/{connection_id}"
            app.router.add_post(path, self.post_to_connection)
            app.router.add_get(path, self.get_connection)
            app.router.add_delete(path, self.delete_connection)
        return app

    @property
    def connection_count(self) -> int:
        """WebSocket clients connected now."""
        return len(self._connections)

    async def close_all(self) -> None:
        """Close every WebSocket with 1001 (going away); each then runs $disconnect."""
        await asyncio.gather(
            *(
                _close(c, WSCloseCode.GOING_AWAY, b"relay stopping")
                for c in list(self._connections.values())
            ),
            return_exceptions=True,
        )

    async def serve_websocket(self, request: web.Request) -> web.StreamResponse:
        """One WebSocket client from handshake to close."""
        now_ms = int(time.time() * 1000)
        info = WebSocketConnectionInfo(
            connection_id=new_connection_id(),
            domain_name=request.host,
            source_ip=request.remote or "",
            user_agent=request.headers.get("User-Agent", ""),
            connected_at_ms=now_ms,
        )
        socket = FrameLimitedWebSocket(
            max_frame_bytes=MAX_CLIENT_FRAME_BYTES,
            max_message_bytes=MAX_FRAME_BYTES,
            on_too_big=lambda what, size: logger.info(
                f"websocket closed: client {what} too big",
                extra={"connection_id": info.connection_id, f"{what}_bytes": size},
            ),
            autoping=True,
            timeout=CLOSE_TIMEOUT_SECONDS,
            compress=False,
        )
        if not socket.can_prepare(request).ok:
            return web.json_response(
                {"error": "this port serves WebSockets: connect with ws://HOST:PORT/?site=SITE"},
                status=426,
                headers={"Upgrade": "websocket"},
            )
        connection = Connection(info, socket, request.transport, last_active_ms=now_ms)
        # Known from now on, but posts answer 410 until the handshake completes (``accepted``),
        # as API Gateway answers a post racing a $connect (the broadcaster retries those).
        self._connections[info.connection_id] = connection
        try:
            status, body = await self._connect(info, request)
        except BaseException:
            self._connections.pop(info.connection_id, None)
            raise
        if not 200 <= status < 300:
            self._connections.pop(info.connection_id, None)
            return web.Response(status=status, text=body or "", content_type="application/json")
        try:
            await socket.prepare(request)
        except BaseException:
            self._connections.pop(info.connection_id, None)
            await self._disconnect(info, 1006)
            raise
        writer = asyncio.create_task(self._write_frames(connection))
        connection.opened_at = connection.last_data_at = time.monotonic()
        closer = asyncio.create_task(self._close_when_idle_or_old(connection))
        connection.accepted = True
        try:
            await self._receive_frames(connection)
        finally:
            self._forget(connection)
            writer.cancel()
            closer.cancel()
            await asyncio.gather(writer, closer, return_exceptions=True)
            if self._faults.hits("drop_disconnect"):
                logger.info(
                    "fault: $disconnect dropped", extra={"connection_id": info.connection_id}
                )
            else:
                await asyncio.shield(self._disconnect(info, socket.close_code or 1006))
        return socket

    def _forget(self, connection: Connection) -> None:
        """Unknown from now on: posts to it answer 410."""
        if self._connections.get(connection.info.connection_id) is connection:
            del self._connections[connection.info.connection_id]

    def _enqueue(self, connection: Connection, frame: Frame) -> bool:
        """Queue a frame for the client; False (and the client dropped) if its outbox is full."""
        if connection.dropped:
            return False
        size = _frame_size(frame)
        if connection.outbox_bytes + size > MAX_OUTBOX_BYTES:
            self._drop(connection, "outbox full")
            return False
        connection.outbox_bytes += size
        connection.outbox.put_nowait((frame, size))
        return True

    def _drop(self, connection: Connection, reason: str) -> None:
        """Abort a client that does not keep up; the frames still queued for it are lost."""
        if connection.dropped:
            return
        connection.dropped = True
        self._forget(connection)
        logger.warning(
            "slow websocket client dropped",
            extra={
                "connection_id": connection.info.connection_id,
                "reason": reason,
                "frames_lost": connection.outbox.qsize(),
                "bytes_lost": connection.outbox_bytes,
            },
        )
        connection.abort()

    async def _deliver(self, connection: Connection, frame: Frame) -> bool:
        """Hand a posted frame to the client; False if it cannot take it (gone, or dropped).

        Written at once when nothing is queued or being written for the client and its socket
        has nothing buffered (it keeps up): a frame left to the writer task waits for the
        task's turn, after every other post the event loop has in hand, so a broadcast's
        burst (64 posts at once) would reach no client before the last post was answered.
        Otherwise queued, so frames keep their order and a slow client holds up no post.
        """
        transport = connection.transport
        keeps_up = transport is None or transport.get_write_buffer_size() == 0
        if connection.outbox_bytes or connection.dropped or not keeps_up:
            return self._enqueue(connection, frame)
        size = _frame_size(frame)
        connection.outbox_bytes += size
        return await self._send(connection, frame, size)

    async def _write_frames(self, connection: Connection) -> None:
        """Send the client's queued frames in order."""
        while not connection.dropped:
            frame, size = await connection.outbox.get()
            if not await self._send(connection, frame, size):
                return

    async def _send(self, connection: Connection, frame: Frame, size: int) -> bool:
        """Write one frame counted in the outbox within SEND_TIMEOUT_SECONDS; whether it was
        written (a client whose socket takes nothing for that long is dropped)."""
        socket = connection.socket
        try:
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                if isinstance(frame, str):
                    await socket.send_str(frame)
                else:
                    await socket.send_bytes(frame)
        except TimeoutError:
            self._drop(connection, f"socket took no data for {SEND_TIMEOUT_SECONDS:g} s")
            return False
        except (ConnectionError, RuntimeError):
            # Closing or closed: the receive loop ends and runs $disconnect.
            return False
        finally:
            connection.outbox_bytes -= size
        connection.last_data_at = time.monotonic()
        return True

    async def _close_when_idle_or_old(self, connection: Connection) -> None:
        """Close the connection as API Gateway does when no data frame has passed for the
        idle timeout, or when it reaches the maximum duration (1001; $disconnect then runs)."""
        while True:
            now = time.monotonic()
            idle_at = connection.last_data_at + self._idle_timeout
            old_at = connection.opened_at + self._max_connection_seconds
            if now < idle_at and now < old_at:
                await asyncio.sleep(min(idle_at, old_at) - now)
                continue
            reason = "idle timeout" if now >= idle_at else "maximum connection duration"
            logger.info(
                "websocket closed by the relay",
                extra={"connection_id": connection.info.connection_id, "reason": reason},
            )
            self._forget(connection)
            await _close(connection, WSCloseCode.GOING_AWAY, b"Going away")
            return

    async def _connect(
        self, info: WebSocketConnectionInfo, request: web.Request
    ) -> tuple[int, str]:
        event = websocket_event(
            info,
            route_key="$connect",
            event_type="CONNECT",
            query=request.query.items(),
            headers=request.headers.items(),
        )
        try:
            answer = await self._invoker.invoke(self._handler, event, FUNCTION_NAME)
        except HandlerCrashed:
            return 500, '{"message": "Internal server error"}'
        return _status_and_body(answer)

    async def _receive_frames(self, connection: Connection) -> None:
        info = connection.info
        async for frame in connection.socket:
            if frame.type == WSMsgType.TEXT:
                body = str(frame.data)
            elif frame.type == WSMsgType.BINARY:
                body = bytes(frame.data).decode("utf-8", errors="replace")
            else:
                # ERROR: aiohttp has already closed the socket (1009 for an oversized frame).
                logger.info(
                    "websocket closed on error",
                    extra={"connection_id": info.connection_id, "close_code": frame.data},
                )
                break
            connection.last_active_ms = int(time.time() * 1000)
            connection.last_data_at = time.monotonic()
            route = websocket_route(body)
            event = websocket_event(
                info, route_key=route.route_key, event_type="MESSAGE", body=body
            )
            try:
                answer = await self._invoker.invoke(self._handler, event, FUNCTION_NAME)
            except HandlerCrashed:
                reply: str | None = (
                    '{"message": "Internal server error", '
                    f'"connectionId": "{info.connection_id}"}}'
                )
            else:
                reply = _status_and_body(answer)[1] if route.returns_response else None
                if route.posts_messages:
                    self._on_stored()
            if reply and not connection.socket.closed:
                self._enqueue(connection, reply)

    async def _disconnect(self, info: WebSocketConnectionInfo, close_code: int) -> None:
        event = websocket_event(
            info,
            route_key="$disconnect",
            event_type="DISCONNECT",
            disconnect_status_code=close_code,
        )
        # A crash is logged by the invoker; the row then expires by TTL.
        with contextlib.suppress(HandlerCrashed):
            await self._disconnect_invoker.invoke(self._handler, event, FUNCTION_NAME)

    def _live_connection(self, request: web.Request) -> Connection | None:
        """The connection a management call names, if it can be posted to."""
        connection = self._connections.get(request.match_info["connection_id"])
        if connection is None or not connection.accepted:
            return None
        live = self._connections.get(connection.info.connection_id) is connection
        if not live or connection.dropped or connection.socket.closed:
            return None
        return connection

    def _refused(self, request: web.Request, body: bytes) -> web.Response | None:
        """API Gateway's 403 for a call without a valid signature; None if it is signed."""
        if self._auth is None:
            return None
        refusal = self._auth.request_refusal(request, body)
        if refusal is None:
            return None
        logger.warning(
            "management call refused",
            extra={"path": request.path, "reason": refusal.error_type},
        )
        return _error(403, refusal.error_type, refusal.message)

    async def post_to_connection(self, request: web.Request) -> web.Response:
        """PostToConnection: send the request body to the client as one frame."""
        data = await request.read()
        refused = self._refused(request, data)
        if refused is not None:
            return refused
        if len(data) > MAX_FRAME_BYTES:
            return _error(413, "PayloadTooLargeException", "Message too long")
        if self._faults.hits("post_429"):
            logger.info("fault: post answered 429", extra={"path": request.path})
            return _error(429, "LimitExceededException", "Rate exceeded")
        connection = self._live_connection(request)
        if connection is None:
            return _gone()
        frame: Frame
        try:
            frame = data.decode("utf-8")
        except UnicodeDecodeError:
            frame = data
        if not await self._deliver(connection, frame):
            return _gone()
        return web.Response(status=200)

    async def get_connection(self, request: web.Request) -> web.Response:
        """GetConnection: when the client connected and its identity."""
        refused = self._refused(request, await request.read())
        if refused is not None:
            return refused
        connection = self._live_connection(request)
        if connection is None:
            return _gone()
        info = connection.info
        return web.json_response(
            {
                "ConnectedAt": _iso(info.connected_at_ms),
                "Identity": {"SourceIp": info.source_ip, "UserAgent": info.user_agent},
                "LastActiveAt": _iso(connection.last_active_ms),
            }
        )

    async def delete_connection(self, request: web.Request) -> web.Response:
        """DeleteConnection: close the client's WebSocket (which runs $disconnect)."""
        refused = self._refused(request, await request.read())
        if refused is not None:
            return refused
        connection = self._live_connection(request)
        if connection is None:
            return _gone()
        self._forget(connection)
        await _close(connection, WSCloseCode.OK, b"deleted")
        return web.Response(status=204)


async def _close(connection: Connection, code: int, message: bytes) -> None:
    """Close with ``code``; abort if the client does not finish the handshake in time."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await connection.socket.close(code=code, message=message)
    except (TimeoutError, ConnectionError, RuntimeError):
        connection.abort()


def _frame_size(frame: Frame) -> int:
    """A frame's size in bytes, as the outbox counts it (UTF-8 for text)."""
    return len(frame.encode()) if isinstance(frame, str) else len(frame)


def _status_and_body(answer: Any) -> tuple[int, str]:
    """Status and body of a WebSocket route's answer (None or a bare value means 200)."""
    if not isinstance(answer, dict):
        return 200, "" if answer is None else str(answer)
    status = int(answer.get("statusCode", 200))
    body = answer.get("body")
    return status, "" if body is None else str(body)


def _gone() -> web.Response:
    return _error(410, "GoneException", "Gone")


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(
        {"message": message}, status=status, headers={"x-amzn-ErrorType": error_type}
    )


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")
