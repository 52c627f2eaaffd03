"""The route table: every API Gateway route, the handler serving it and whether it writes.

The CDK stack builds its routes from this table and the local relay serves exactly these, so
the two cannot drift; each entry module dispatches on the same route keys.
"""

from __future__ import annotations

from dataclasses import dataclass

HTTP_HANDLER = "userstatus.http_api.handler"
WEBSOCKET_HANDLER = "userstatus.websocket_api.handler"
BROADCAST_HANDLER = "userstatus.broadcast.handler"
# Invoked by the broadcaster, not a route: one chunk of a big site's connections.
FANOUT_HANDLER = "userstatus.fanout.handler"


@dataclass(frozen=True)
class HttpRoute:
    """An HTTP API route such as ``POST /newlog``."""

    method: str
    path: str
    handler: str = HTTP_HANDLER
    posts_messages: bool = False

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class WebSocketRoute:
    """A WebSocket API route; ``returns_response`` sends the handler's body back as a frame."""

    route_key: str
    handler: str = WEBSOCKET_HANDLER
    returns_response: bool = False
    posts_messages: bool = False


HTTP_ROUTES: tuple[HttpRoute, ...] = (
    HttpRoute("POST", "/newlog", posts_messages=True),
    HttpRoute("GET", "/recent-logs"),
    HttpRoute("GET", "/onlineusers"),
)

WEBSOCKET_ROUTES: tuple[WebSocketRoute, ...] = (
    WebSocketRoute("$connect"),
    WebSocketRoute("$disconnect"),
    WebSocketRoute("$default", returns_response=True),
    WebSocketRoute("newlog", returns_response=True, posts_messages=True),
)

# API Gateway picks the WebSocket route from this field of each JSON frame.
WEBSOCKET_ROUTE_SELECTION_EXPRESSION = "$request.body.action"
WEBSOCKET_ACTIONS: tuple[str, ...] = tuple(
    r.route_key for r in WEBSOCKET_ROUTES if not r.route_key.startswith("$")
)
