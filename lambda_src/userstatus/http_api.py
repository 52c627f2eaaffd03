"""Entry point of the HTTP API (API Gateway HTTP API, payload format 2.0).

Routes (see ``userstatus.routes``):

* ``POST /newlog``: store a message (body: see ``userstatus.model``); answers 200 with what was
  stored: ``{"site", "message", "log_level", "timestamp", "id"}``.
* ``GET /recent-logs?site=S[&after_time=T][&limit=N]``: messages of S stamped after T (default
  24 hours ago), oldest first; with ``limit`` (1-1000) only the newest N. If the whole answer
  would pass Lambda's 6 MB response limit, the oldest entries are left out and the header
  ``X-Userstatus-Truncated: true`` says so.
* ``GET /onlineusers?site=S``: ``{"site": S, "connections": N}``.

Every answer carries CORS headers; errors are ``{"error": "...", "field": "..."}`` (see
``userstatus.web``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from userstatus.cors import TRUNCATED_HEADER, cors_headers
from userstatus.errors import InvalidInput, RouteNotFound
from userstatus.logs import bind_request_id, log_adjustments
from userstatus.model import parse_json_object, parse_seconds, validate_message, validate_site
from userstatus.runtime import Runtime, runtime
from userstatus.web import Answer, RawJson, answer_errors, json_text, request_body

DEFAULT_WINDOW_SECONDS = 24 * 3600
MAX_LIMIT = 1000
# Lambda answers at most 6 MB; keep the JSON body well under it.
MAX_RESPONSE_BYTES = 5_500_000
_WHOLE_NUMBER = re.compile(r"[0-9]{1,6}")

Event = Mapping[str, Any]


def handler(event: Event, context: object) -> dict[str, Any]:
    """Serve one HTTP API request."""
    request_id = bind_request_id(context)
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    method = event.get("requestContext", {}).get("http", {}).get("method", "")
    rt = runtime()
    cors = cors_headers(headers.get("origin"), rt.settings.allowed_origins)
    if method == "OPTIONS":
        return {"statusCode": 204, "headers": cors, "body": ""}

    def route() -> Answer:
        serve = ROUTES.get(str(event.get("routeKey", "")))
        if serve is None:
            raise RouteNotFound(f"no route {event.get('routeKey')!r}")
        return serve(event, rt)

    status, body, extra_headers = answer_errors(route, request_id)
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **cors, **extra_headers},
        "body": json_text(body),
    }


def post_newlog(event: Event, rt: Runtime) -> Answer:
    """Validate and store one message."""
    received_at = time.time()
    message = validate_message(parse_json_object(request_body(event)), received_at=received_at)
    log_adjustments(message)
    rt.messages.put(message, received_at=received_at)
    return 200, message.answer(), {}


def get_recent_logs(event: Event, rt: Runtime) -> Answer:
    """Messages of a site after a time, oldest first."""
    query = event.get("queryStringParameters") or {}
    site = validate_site(query.get("site"))
    after_time = _after_time(query.get("after_time"))
    limit = _limit(query.get("limit"))
    entries = rt.messages.entries_after(site, after_time, limit)
    body = json_text(entries)
    if _utf8_length(body) <= MAX_RESPONSE_BYTES:
        return 200, RawJson(body), {}
    trimmed, kept = json_array_of_newest([json_text(e) for e in entries], MAX_RESPONSE_BYTES)
    return 200, trimmed, {TRUNCATED_HEADER: "true"} if kept < len(entries) else {}


def get_online_users(event: Event, rt: Runtime) -> Answer:
    """How many WebSocket connections a site has."""
    site = validate_site((event.get("queryStringParameters") or {}).get("site"))
    return 200, {"site": site, "connections": rt.connections.count(site, now=time.time())}, {}


ROUTES: dict[str, Callable[[Event, Runtime], Answer]] = {
    "POST /newlog": post_newlog,
    "GET /recent-logs": get_recent_logs,
    "GET /onlineusers": get_online_users,
}


def json_array_of_newest(entries: list[str], budget: int) -> tuple[RawJson, int]:
    """A JSON array of the newest serialized entries that fit ``budget`` bytes; and their count."""
    size = 2
    first = 0
    for index in range(len(entries) - 1, -1, -1):
        size += _utf8_length(entries[index]) + 1
        if size > budget:
            first = index + 1
            break
    return RawJson("[" + ",".join(entries[first:]) + "]"), len(entries) - first


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _after_time(raw: str | None) -> Decimal:
    if raw is None or raw == "":
        return Decimal(int(time.time()) - DEFAULT_WINDOW_SECONDS)
    if raw.strip() == "0":
        return Decimal(0)
    return parse_seconds(raw, "after_time")


def _limit(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not _WHOLE_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidInput("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)
