"""API Gateway and Lambda event shapes built from local requests, and the Lambda context.

Pure functions on plain values; they import the route table and the relay's stage name, never
the handlers, so nothing here reads the Lambda configuration.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from userstatus.routes import HTTP_ROUTES, WEBSOCKET_ROUTES, WebSocketRoute
from userstatus_local.options import LOCAL_STAGE

HTTP_STAGE = "$default"
LAMBDA_TIMEOUT_SECONDS = 30.0

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
)
_WEBSOCKET_ROUTES_BY_KEY = {route.route_key: route for route in WEBSOCKET_ROUTES}


@dataclass
class LambdaContext:
    """The parts of the Lambda context object the handlers use."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_seconds: float = LAMBDA_TIMEOUT_SECONDS
    started_at: float = field(default_factory=time.monotonic)
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the (nominal) Lambda timeout."""
        elapsed = time.monotonic() - self.started_at
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def new_connection_id() -> str:
    """A random connection id shaped like API Gateway's (16 characters ending in '=')."""
    return base64.urlsafe_b64encode(os.urandom(11)).decode()


def new_request_id() -> str:
    """A request id like API Gateway's ``requestContext.requestId``."""
    return base64.urlsafe_b64encode(os.urandom(12)).decode().rstrip("=")


def http_route_key(method: str, path: str) -> str | None:
    """The route key of the shared route table serving ``METHOD path``, if any.

    ``OPTIONS`` on a routed path is answered by the HTTP handler (CORS preflight).
    """
    known_paths = {route.path for route in HTTP_ROUTES}
    if method == "OPTIONS" and path in known_paths:
        return f"OPTIONS {path}"
    for route in HTTP_ROUTES:
        if route.method == method and route.path == path:
            return route.route_key
    return None


def query_parameters(pairs: Iterable[tuple[str, str]]) -> dict[str, str] | None:
    """``queryStringParameters`` as API Gateway builds them: repeated keys comma-joined."""
    joined: dict[str, str] = {}
    for key, value in pairs:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined or None


def lowercase_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lowercased, repeated headers comma-joined (payload format 2.0)."""
    joined: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def is_text(content_type: str) -> bool:
    """Whether API Gateway would pass a body of this type as text rather than base64."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return not media_type or media_type.startswith(_TEXT_TYPES) or media_type.endswith("+json")


def http_event(
    *,
    route_key: str,
    method: str,
    raw_path: str,
    raw_query: str,
    query: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str,
    domain_name: str,
) -> dict[str, Any]:
    """An API Gateway HTTP API event, payload format 2.0."""
    header_map = lowercase_headers(headers)
    now = time.time()
    request_id = new_request_id()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": header_map.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": HTTP_STAGE,
            "time": _clf_time(now),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    cookies = header_map.get("cookie")
    if cookies:
        event["cookies"] = [c.strip() for c in cookies.split(";") if c.strip()]
    parameters = query_parameters(query)
    if parameters is not None:
        event["queryStringParameters"] = parameters
    if body:
        if is_text(header_map.get("content-type", "")):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def websocket_route(body: str) -> WebSocketRoute:
    """The route a frame takes: its JSON ``action`` if a route has that key, else ``$default``."""
    try:
        action = json.loads(body).get("action")
    except (ValueError, AttributeError):
        action = None
    if isinstance(action, str) and not action.startswith("$"):
        route = _WEBSOCKET_ROUTES_BY_KEY.get(action)
        if route is not None:
            return route
    return _WEBSOCKET_ROUTES_BY_KEY["$default"]


@dataclass(frozen=True)
class WebSocketConnectionInfo:
    """What API Gateway knows about a WebSocket connection."""

    connection_id: str
    domain_name: str
    source_ip: str
    user_agent: str
    connected_at_ms: int


def websocket_event(
    connection: WebSocketConnectionInfo,
    *,
    route_key: str,
    event_type: str,
    body: str | None = None,
    query: Iterable[tuple[str, str]] = (),
    headers: Iterable[tuple[str, str]] = (),
    disconnect_status_code: int | None = None,
) -> dict[str, Any]:
    """An API Gateway WebSocket API event (CONNECT, MESSAGE or DISCONNECT)."""
    now = time.time()
    request_context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": new_request_id(),
        "requestTime": _clf_time(now),
        "messageDirection": "IN",
        "stage": LOCAL_STAGE,
        "connectedAt": connection.connected_at_ms,
        "requestTimeEpoch": int(now * 1000),
        "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
        "requestId": new_request_id(),
        "domainName": connection.domain_name,
        "connectionId": connection.connection_id,
        "apiId": "local",
    }
    if event_type == "MESSAGE":
        request_context["messageId"] = new_request_id()
    if event_type == "DISCONNECT":
        request_context["disconnectStatusCode"] = disconnect_status_code or 1005
        request_context["disconnectReason"] = ""
    event: dict[str, Any] = {"requestContext": request_context, "isBase64Encoded": False}
    if event_type == "CONNECT":
        header_map = lowercase_headers(headers)
        event["headers"] = header_map
        event["multiValueHeaders"] = {name: [value] for name, value in header_map.items()}
        parameters = query_parameters(query)
        if parameters is not None:
            event["queryStringParameters"] = parameters
    if body is not None:
        event["body"] = body
    return event


def stream_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A DynamoDB Streams ``get_records`` record in the shape Lambda hands to a function."""
    dynamodb = dict(record.get("dynamodb") or {})
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    shaped = {key: value for key, value in record.items() if key != "dynamodb"}
    shaped["dynamodb"] = dynamodb
    shaped.setdefault("eventSource", "aws:dynamodb")
    shaped["eventSourceARN"] = stream_arn
    return shaped


def _clf_time(epoch: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch))
