"""Entry point of the WebSocket API (API Gateway WebSocket API).

* ``$connect`` with ``?site=S``: remembers the connection; a missing or bad site rejects the
  handshake with 400.
* ``$disconnect``: forgets the connection.
* ``newlog`` (a frame ``{"action": "newlog", ...fields of POST /newlog...}``): stores the message
  like ``POST /newlog``. No answer: the sender receives its message through the broadcast. The
  frame's ``key`` field is its publish key (``PUBLISH_AUTH``: see ``userstatus.publish_keys``).
* ``$default`` (any other frame): answers ``{"error": "...", "supported_actions": [...]}``.
  A ``newlog`` frame lands here when the stage leaves that route out (``post_auth=iam``): it is
  answered 403, pointing to the signed ``POST /newlog``.

Error frames are ``{"error": "...", "field": "...", "status": 400, "message": "...",
"log_level": "error", "timestamp": "1604514063"}``: the frontend renders every frame it gets as
a log line (``message`` and ``timestamp``), so refusals show as readable error lines. Messages
reach subscribers through the broadcaster, never through these answers.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from userstatus import deadline
from userstatus.errors import InvalidInput
from userstatus.logs import bind_request_id, log_adjustments
from userstatus.model import parse_json_object, validate_message, validate_site
from userstatus.publish_keys import frame_key
from userstatus.routes import WEBSOCKET_ACTIONS
from userstatus.runtime import Runtime, runtime
from userstatus.web import Answer, answer_errors, json_text, request_body

Event = Mapping[str, Any]
logger = logging.getLogger("userstatus")
# Waits before asking the connections index again when $disconnect finds no row.
DISCONNECT_RETRY_WAITS = (0.1, 0.3, 0.6)


@deadline.within_time
def handler(event: Event, context: object) -> dict[str, Any]:
    """Serve one WebSocket event."""
    request_id = bind_request_id(context)
    request_context = event.get("requestContext", {})
    route_key = request_context.get("routeKey", "$default")
    connection_id = str(request_context.get("connectionId", ""))
    rt = runtime()
    serve = ROUTES.get(route_key, unsupported_action)
    status, body, _ = answer_errors(lambda: serve(event, connection_id, rt), request_id)
    if status >= 400 and isinstance(body, dict) and route_key != "$connect":
        body = error_frame(body, status, now=time.time())
    response: dict[str, Any] = {"statusCode": status}
    if body is not None:
        response["body"] = json_text(body)
    return response


def connect(event: Event, connection_id: str, rt: Runtime) -> Answer:
    """Accept a subscription to one site."""
    site = validate_site((event.get("queryStringParameters") or {}).get("site"))
    rt.connections.add(site, connection_id, now=time.time())
    return 200, None, {}


def disconnect(event: Event, connection_id: str, rt: Runtime) -> Answer:
    """Forget a closed connection.

    The row is found through the index by connection id, a global secondary index: its reads
    are eventually consistent, so right after ``$connect`` it may not show the row yet
    (docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html, "Reading data from
    a global secondary index"). A miss is asked again a few times (about 1 s in all); a row
    still not found expires by its TTL, and the next broadcast's 410 removes it sooner.
    """
    for wait in (*DISCONNECT_RETRY_WAITS, None):
        if rt.connections.remove_everywhere(connection_id):
            break
        if wait is None:
            logger.info("disconnect found no row", extra={"connection_id": connection_id})
            break
        time.sleep(wait)
    return 200, None, {}


def newlog(event: Event, connection_id: str, rt: Runtime) -> Answer:
    """Store a message sent as a frame."""
    received_at = time.time()
    fields = parse_json_object(request_body(event))
    fields.pop("action", None)
    key = frame_key(fields)  # never part of the message
    message = validate_message(fields, received_at=received_at)
    rt.publish.check(
        message.site,
        key,
        field="key",
        source=str(event.get("requestContext", {}).get("identity", {}).get("sourceIp", "")),
    )
    log_adjustments(message)
    rt.messages.put(message, received_at=received_at)
    # No body: API Gateway (and ministack) would send it to the sender as a frame, which the
    # frontend renders as an empty log line. The sender gets the broadcast like everyone.
    return 200, None, {}


def error_frame(body: Mapping[str, Any], status: int, *, now: float) -> dict[str, Any]:
    """A refusal as the frame the sender gets: the error details, plus what the frontend
    renders for every frame it receives (``message``, ``log_level``, ``timestamp``)."""
    return {
        **body,
        "status": status,
        "message": body["error"],
        "log_level": "error",
        "timestamp": str(math.floor(now)),
    }


def unsupported_action(event: Event, connection_id: str, rt: Runtime) -> Answer:
    """Answer a frame no route takes."""
    supported = list(WEBSOCKET_ACTIONS)
    try:
        action = parse_json_object(request_body(event)).get("action")
    except InvalidInput:
        action = None
    if action in supported:
        # A known action reaching $default: the stage does not deploy its route (post_auth=iam
        # leaves out the WebSocket newlog route, since API Gateway authorizes only $connect).
        error = f"action {action!r} is turned off on this stage: use a signed POST /newlog"
        return 403, {"error": error, "field": "action", "supported_actions": []}, {}
    what = f"unsupported action {action!r}" if isinstance(action, str) else "no action given"
    error = f"{what}: send a JSON object whose 'action' is one of {', '.join(supported)}"
    return 400, {"error": error, "field": "action", "supported_actions": supported}, {}


ROUTES: dict[str, Callable[[Event, str, Runtime], Answer]] = {
    "$connect": connect,
    "$disconnect": disconnect,
    "newlog": newlog,
    "$default": unsupported_action,
}
