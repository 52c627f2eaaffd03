"""The HTTP API port: the routes of the shared route table, and the viewer page at ``/``.

Each request on a routed path becomes an API Gateway HTTP API event (payload format 2.0) for
the HTTP handler, whose answer is returned as is; ``OPTIONS`` on a routed path goes to the
handler too (CORS preflight). Other paths answer 404 ``{"message": "Not Found"}`` and bodies
over API Gateway's 10 MB answer 413 ``{"message": "Request Entity Too Large"}``, as API Gateway
itself does (the stack's HTTP API has no ``$default`` route).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web

from userstatus.routes import HTTP_ROUTES
from userstatus_local.events import http_event, http_route_key
from userstatus_local.invoke import HandlerCrashed, Invoker, LambdaHandler
from userstatus_local.options import url_host

# API Gateway HTTP APIs take request bodies up to 10 MB.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
FUNCTION_NAME = "userstatus-local-http"
VIEWER_CONFIG_PLACEHOLDER = "/*USERSTATUS_CONFIG*/"
_STORING_ROUTE_KEYS = frozenset(r.route_key for r in HTTP_ROUTES if r.posts_messages)


def viewer_page(*, websocket_url: str, api_url: str) -> str:
    """The viewer page, told where the WebSocket API (``?site=`` is appended) and HTTP API are."""
    config = {"websocketUrl": websocket_url, "apiUrl": api_url}
    page = resources.files("userstatus_local").joinpath("static/viewer.html")
    return page.read_text(encoding="utf-8").replace(
        VIEWER_CONFIG_PLACEHOLDER, "window.USERSTATUS_CONFIG = " + json.dumps(config) + ";"
    )


class HttpRelay:
    """Serves the HTTP API through the HTTP handler, and the viewer page."""

    def __init__(
        self,
        handler: LambdaHandler,
        invoker: Invoker,
        websocket_port: int,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self._handler = handler
        self._invoker = invoker
        self._websocket_port = websocket_port
        self._on_stored = on_stored

    def application(self) -> web.Application:
        """The aiohttp application for the HTTP port."""
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_get("/", self.serve_viewer)
        app.router.add_route("*", "/{path:.*}", self.serve_api)
        return app

    async def serve_viewer(self, request: web.Request) -> web.Response:
        """The viewer page, told where the WebSocket API is."""
        host = url_host(request.url.host or "127.0.0.1")
        page = viewer_page(websocket_url=f"ws://{host}:{self._websocket_port}/", api_url="")
        return web.Response(
            text=page, content_type="text/html", headers={"Cache-Control": "no-store"}
        )

    async def serve_api(self, request: web.Request) -> web.Response:
        """One API request through the HTTP handler."""
        route_key = http_route_key(request.method, request.path)
        if route_key is None:
            # No $default route: API Gateway answers unknown routes itself.
            return web.json_response({"message": "Not Found"}, status=404)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            # API Gateway refuses bodies over 10 MB itself, with a JSON answer.
            return web.json_response({"message": "Request Entity Too Large"}, status=413)
        event = http_event(
            route_key=route_key,
            method=request.method,
            raw_path=request.raw_path.split("?", 1)[0],
            raw_query=request.query_string,
            query=request.query.items(),
            headers=request.headers.items(),
            body=body,
            source_ip=request.remote or "",
            domain_name=request.host.split(":", 1)[0],
        )
        try:
            answer = await self._invoker.invoke(self._handler, event, FUNCTION_NAME)
        except HandlerCrashed:
            return web.json_response({"message": "Internal Server Error"}, status=500)
        if route_key in _STORING_ROUTE_KEYS:
            self._on_stored()
        return http_response(answer)


def http_response(answer: Any) -> web.Response:
    """The HTTP response API Gateway makes of a payload-2.0 handler answer."""
    if not (isinstance(answer, dict) and "statusCode" in answer):
        # Without a statusCode, API Gateway answers 200 with the value as JSON.
        return web.json_response(answer)
    headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ",".join(str(v) for v in values)
    headers.setdefault("Content-Type", "application/json")
    raw = answer.get("body")
    body = b"" if raw is None else str(raw).encode("utf-8")
    if answer.get("isBase64Encoded") and raw is not None:
        body = base64.b64decode(str(raw))
    response = web.Response(status=int(answer["statusCode"]), body=body, headers=headers)
    for cookie in answer.get("cookies") or []:
        response.headers.add("Set-Cookie", str(cookie))
    return response
