"""The WebSocket API and its management API, on one port.

* ``GET /?site=S`` upgraded to a WebSocket: ``$connect``, every frame and ``$disconnect`` become
  API Gateway WebSocket events for the WebSocket handler. A non-2xx answer to ``$connect``
  rejects the handshake with that status; frames over 128 KB close the connection with 1009,
  as API Gateway does.
* ``POST``, ``GET`` and ``DELETE /@connections/{id}`` (also under a stage prefix,
  ``/{stage}/@connections/{id}``): API Gateway's management API, so the broadcaster's posts
  reach real WebSocket clients. Unknown ids answer 410 ``{"message": "Gone"}``. Requests are
  not authenticated (SigV4 signatures are accepted unchecked).
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
from userstatus_local.invoke import HandlerCrashed, Invoker, LambdaHandler

logger = logging.getLogger("userstatus_local.websocket")

# API Gateway's limits: 128 KB a frame (and a posted message), 32 KB per frame fragment.
MAX_FRAME_BYTES = 128 * 1024
PENDING_CONNECT_TIMEOUT_SECONDS = 10.0
FUNCTION_NAME = "userstatus-local-websocket"

WebSocket = web.WebSocketResponse


@dataclass
class Connection:
    """One WebSocket client, known from the start of its $connect."""

    info: WebSocketConnectionInfo
    socket: WebSocket
    accepted: asyncio.Event = field(default_factory=asyncio.Event)
    last_active_ms: int = 0


class WebSocketRelay:
    """Serves WebSocket clients through the WebSocket handler and posts to them on request."""

    def __init__(
        self,
        handler: LambdaHandler,
        invoker: Invoker,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self._handler = handler
        self._invoker = invoker
        self._on_stored = on_stored
        self._connections: dict[str, Connection] = {}

    def application(self) -> web.Application:
        """The aiohttp application for the WebSocket port."""
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
                c.socket.close(code=WSCloseCode.GOING_AWAY, message=b"relay stopping")
                for c in list(self._connections.values())
            ),
            return_exceptions=True,
        )

    async def serve_websocket(self, request: web.Request) -> web.StreamResponse:
        """One WebSocket client from handshake to close."""
        socket = WebSocket(max_msg_size=MAX_FRAME_BYTES, autoping=True)
        if not socket.can_prepare(request).ok:
            return web.json_response(
                {"error": "this port serves WebSockets: connect with ws://HOST:PORT/?site=SITE"},
                status=426,
                headers={"Upgrade": "websocket"},
            )
        now_ms = int(time.time() * 1000)
        info = WebSocketConnectionInfo(
            connection_id=new_connection_id(),
            domain_name=request.host,
            source_ip=request.remote or "",
            user_agent=request.headers.get("User-Agent", ""),
            connected_at_ms=now_ms,
        )
        connection = Connection(info, socket, last_active_ms=now_ms)
        # Known before $connect answers, so a broadcast racing the handshake waits for it
        # instead of finding the new row's id unknown (410) and deleting the row.
        self._connections[info.connection_id] = connection
        try:
            status, body = await self._connect(info, request)
        except BaseException:
            self._connections.pop(info.connection_id, None)
            raise
        if not 200 <= status < 300:
            self._connections.pop(info.connection_id, None)
            connection.accepted.set()
            return web.Response(status=status, text=body or "", content_type="application/json")
        try:
            await socket.prepare(request)
        except BaseException:
            self._connections.pop(info.connection_id, None)
            connection.accepted.set()
            await self._disconnect(info, 1006)
            raise
        connection.accepted.set()
        try:
            await self._receive_frames(connection)
        finally:
            self._connections.pop(info.connection_id, None)
            await asyncio.shield(self._disconnect(info, socket.close_code or 1006))
        return socket

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
                await connection.socket.send_str(reply)

    async def _disconnect(self, info: WebSocketConnectionInfo, close_code: int) -> None:
        event = websocket_event(
            info,
            route_key="$disconnect",
            event_type="DISCONNECT",
            disconnect_status_code=close_code,
        )
        # A crash is logged by the invoker; the row then expires by TTL.
        with contextlib.suppress(HandlerCrashed):
            await self._invoker.invoke(self._handler, event, FUNCTION_NAME)

    async def _live_connection(self, request: web.Request) -> Connection | None:
        connection = self._connections.get(request.match_info["connection_id"])
        if connection is None:
            return None
        if not connection.accepted.is_set():
            try:
                await asyncio.wait_for(connection.accepted.wait(), PENDING_CONNECT_TIMEOUT_SECONDS)
            except TimeoutError:
                return None
        live = self._connections.get(connection.info.connection_id) is connection
        return connection if live and not connection.socket.closed else None

    async def post_to_connection(self, request: web.Request) -> web.Response:
        """PostToConnection: send the request body to the client as one frame."""
        data = await request.read()
        if len(data) > MAX_FRAME_BYTES:
            return _error(413, "PayloadTooLargeException", "Message too long")
        connection = await self._live_connection(request)
        if connection is None:
            return _gone()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        try:
            if text is None:
                await connection.socket.send_bytes(data)
            else:
                await connection.socket.send_str(text)
        except (ConnectionError, RuntimeError):
            return _gone()
        return web.Response(status=200)

    async def get_connection(self, request: web.Request) -> web.Response:
        """GetConnection: when the client connected and its identity."""
        connection = await self._live_connection(request)
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
        connection = await self._live_connection(request)
        if connection is None:
            return _gone()
        await connection.socket.close(code=WSCloseCode.OK, message=b"deleted")
        return web.Response(status=204)


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
