"""Request decoding, responses and the one place where errors become answers.

Every answer, errors included, is JSON. Domain errors (``RelayError``) become their status with
``{"error": "...", "field": "..."}``; a store outage becomes 503 with Retry-After; anything else
is logged with its stack trace and answered 500 ``{"error": "internal error", "request_id"}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from userstatus.errors import (
    InvalidInput,
    PayloadTooLarge,
    RelayError,
    StoreUnavailable,
    Unauthorized,
)
from userstatus.model import MAX_BODY_BYTES

logger = logging.getLogger("userstatus")

Answer = tuple[int, Any, dict[str, str]]


def request_body(event: Mapping[str, Any]) -> bytes:
    """The raw body of an API Gateway event, base64-decoded when API Gateway encoded it."""
    body = event.get("body")
    if body is None:
        raise InvalidInput("body", "body is required: a JSON object")
    if not isinstance(body, str):
        raise InvalidInput("body", "body must be a JSON object")
    if event.get("isBase64Encoded"):
        if len(body) > MAX_BODY_BYTES * 4 // 3 + 4:
            raise PayloadTooLarge("body", f"body is larger than {MAX_BODY_BYTES} bytes")
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("body", "body is not valid base64") from None
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("body", "body is not valid UTF-8") from None


def answer_errors(route: Callable[[], Answer], request_id: str) -> Answer:
    """Run a route; map any exception to an answer (status, JSON body, headers)."""
    try:
        return route()
    except StoreUnavailable as error:
        logger.warning("store unavailable", extra={"cause": repr(error.__cause__)})
        return (
            error.status,
            {"error": error.message},
            {"Retry-After": str(error.retry_after)},
        )
    except InvalidInput as error:
        logger.info("rejected", extra={"field": error.field, "reason": error.message})
        headers = {}
        if isinstance(error, Unauthorized) and error.field == "Authorization":
            # RFC 6750 section 3: a 401 names the scheme the resource expects.
            headers["WWW-Authenticate"] = 'Bearer realm="userstatus"'
        return error.status, {"error": error.message, "field": error.field}, headers
    except RelayError as error:
        return error.status, {"error": error.message}, {}
    except Exception:
        logger.exception("internal error")
        return 500, {"error": "internal error", "request_id": request_id}, {}


class RawJson(str):
    """A body already serialized to JSON; ``json_text`` passes it through."""


def json_text(body: Any) -> str:
    """Compact JSON, non-ASCII kept as is."""
    if isinstance(body, RawJson):
        return str(body)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
