"""Entry point of the HTTP API (API Gateway HTTP API, payload format 2.0).

Routes (see ``userstatus.routes``):

* ``POST /newlog``: store a message (body: see ``userstatus.model``); answers 200 with what was
  stored: ``{"site", "message", "log_level", "timestamp", "id"}``. With ``PUBLISH_AUTH=keys`` it
  needs ``Authorization: Bearer <publish key>`` of the message's site (401 without, 403 with
  another), with ``audit`` a post without one is logged and counted (``userstatus.publish_keys``).
* ``GET /recent-logs?site=S[&after_time=T][&limit=N]``: messages of S stamped after T (default
  24 hours ago), oldest first; with ``limit`` (1-1000) only the newest N. If the whole answer
  would pass Lambda's 6 MB response limit, the oldest entries are left out and the header
  ``X-Userstatus-Truncated: true`` says so. Read newest first, a page at a time, so only about
  what is answered is read.
* ``GET /onlineusers?site=S``: ``{"site": S, "connections": N}``.

Every answer carries CORS headers; errors are ``{"error": "...", "field": "..."}`` (see
``userstatus.web``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

from userstatus import deadline
from userstatus.cors import TRUNCATED_HEADER, cors_headers
from userstatus.errors import InvalidInput, RouteNotFound
from userstatus.logs import bind_request_id, log_adjustments
from userstatus.model import (
    MAX_SECONDS_TEXT_LENGTH,
    parse_json_object,
    parse_seconds,
    validate_message,
    validate_site,
)
from userstatus.publish_keys import bearer_key
from userstatus.runtime import Runtime, runtime
from userstatus.web import Answer, RawJson, answer_errors, json_text, request_body

DEFAULT_WINDOW_SECONDS = 24 * 3600
MAX_LIMIT = 1000
# Lambda refuses a synchronous invocation response over 6 MB, 6,291,456 bytes ("Invocation
# payload (request and response)", docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html),
# and API Gateway then answers 500. That is the serialized response, where the body is a JSON
# string: each quote and backslash of the body escaped, each control character six bytes, and
# each non-ASCII character six (or twelve) where the runtime serializes with ensure_ascii (the
# runtime interface client's choice varies by Python version), so the body is measured that way,
# the larger of the two. The margin covers the status and headers (well under 1 KB).
LAMBDA_RESPONSE_LIMIT_BYTES = 6_291_456
RESPONSE_MARGIN_BYTES = 16 * 1024
MAX_ESCAPED_BODY_BYTES = LAMBDA_RESPONSE_LIMIT_BYTES - RESPONSE_MARGIN_BYTES
_WHOLE_NUMBER = re.compile(r"[0-9]{1,6}")
_ZERO = re.compile(r"[ \t\n\r]*0[ \t\n\r]*")  # after_time=0: everything kept

Event = Mapping[str, Any]


@deadline.within_time
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
    """Validate and store one message, if its publish key allows it."""
    received_at = time.time()
    message = validate_message(parse_json_object(request_body(event)), received_at=received_at)
    if rt.publish.mode != "open":
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        rt.publish.check(
            message.site,
            bearer_key(headers),
            field="Authorization",
            source=str(event.get("requestContext", {}).get("http", {}).get("sourceIp", "")),
        )
    log_adjustments(message)
    rt.messages.put(message, received_at=received_at)
    return 200, message.answer(), {}


def get_recent_logs(event: Event, rt: Runtime) -> Answer:
    """Messages of a site after a time, oldest first."""
    query = event.get("queryStringParameters") or {}
    site = validate_site(query.get("site"))
    after_time = _after_time(query.get("after_time"))
    limit = _limit(query.get("limit"))
    pages = rt.messages.pages_newest_first(site, after_time, limit)
    body, truncated = json_array_of_newest(pages, MAX_ESCAPED_BODY_BYTES)
    return 200, body, {TRUNCATED_HEADER: "true"} if truncated else {}


def get_online_users(event: Event, rt: Runtime) -> Answer:
    """How many WebSocket connections a site has."""
    site = validate_site((event.get("queryStringParameters") or {}).get("site"))
    return 200, {"site": site, "connections": rt.connections.count(site, now=time.time())}, {}


ROUTES: dict[str, Callable[[Event, Runtime], Answer]] = {
    "POST /newlog": post_newlog,
    "GET /recent-logs": get_recent_logs,
    "GET /onlineusers": get_online_users,
}


def json_array_of_newest(
    pages_newest_first: Iterable[list[dict[str, Any]]], budget: int
) -> tuple[RawJson, bool]:
    """A JSON array, oldest first, of the newest entries whose body fits ``budget`` bytes once
    escaped as a JSON string; and whether older entries were left out for it. Stops taking
    pages (so stops reading) as soon as one does not fit."""
    runs: list[str] = []  # entries of one page, oldest first, newest page first
    used = 2  # the brackets
    for page in pages_newest_first:
        if not page:
            continue
        run = json_text(page[::-1])[1:-1]
        size = escaped_length(run) + (1 if runs else 0)
        if used + size <= budget:
            runs.append(run)
            used += size
            continue
        kept: list[str] = []
        for entry in page:
            text = json_text(entry)
            size = escaped_length(text) + (1 if runs or kept else 0)
            if used + size > budget:
                break
            kept.append(text)
            used += size
        if kept:
            runs.append(",".join(reversed(kept)))
        return RawJson("[" + ",".join(reversed(runs)) + "]"), True
    return RawJson("[" + ",".join(reversed(runs)) + "]"), False


def escaped_length(text: str) -> int:
    """Bytes of ``text`` inside a JSON string serialized with ensure_ascii (the larger form)."""
    return len(encode_basestring_ascii(text)) - 2


def _after_time(raw: str | None) -> Decimal:
    if raw is None or raw == "":
        return Decimal(int(time.time()) - DEFAULT_WINDOW_SECONDS)
    if len(raw) <= MAX_SECONDS_TEXT_LENGTH and _ZERO.fullmatch(raw):
        return Decimal(0)
    return parse_seconds(raw, "after_time")


def _limit(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not _WHOLE_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidInput("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)
