"""The message model and its validation: pure functions on plain values, no I/O.

Wire format (a contract with the existing frontend and observatory scripts):

* a posted message is a JSON object with ``site`` (1-64 of ``A-Za-z0-9_-``), ``log_message``
  (non-empty, at most 16 KiB as UTF-8), optional ``log_level`` (debug, info, warning, error,
  critical in any case; ``warn`` and ``fatal`` stored as warning and critical; default info) and
  optional ``timestamp`` (unix seconds: int, float or numeric string; default the time of
  receipt). Unknown fields are ignored; ``null`` for an optional field means "not given".
* the broadcast frame is exactly ``{"site", "message", "log_level", "timestamp"}`` with the
  timestamp a string of whole seconds;
* a recent-logs entry is ``{"site", "message", "log_level", "timestamp"}`` with the timestamp a
  number of seconds, as posted.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

from userstatus.errors import InvalidInput, PayloadTooLarge

MAX_MESSAGE_BYTES = 16 * 1024
# A body holding one maximal message, fully \u-escaped, still fits; anything larger is refused
# before parsing.
MAX_BODY_BYTES = 128 * 1024
# 9999-12-31T23:59:59Z. Larger values are almost always milliseconds sent by mistake.
MAX_TIMESTAMP = 253_402_300_799
# Timestamps keep up to nanoseconds (a float from time.time() has fewer digits); the sort key
# holds them exactly, so after_time compares exactly too.
_TIMESTAMP_QUANTUM = Decimal("1e-9")
# Seconds as text: a plain decimal (no exponent: a string's value must be decidable from its
# digits, so that docs/openapi.yaml's pattern can say exactly which strings are accepted), JSON
# white space around it, at most 64 characters.
_SECONDS_TEXT = re.compile(r"[ \t\n\r]*\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t\n\r]*")
MAX_SECONDS_TEXT_LENGTH = 64

# A timestamp further ahead of receipt than this is a wrong clock: it is replaced by the time
# of receipt (and the answer and the log say so).
MAX_CLOCK_AHEAD_SECONDS = 24 * 3600
FUTURE_TIMESTAMP_ADJUSTMENT = "more than 24 hours ahead of receipt: stored at the time of receipt"

LEVELS = ("debug", "info", "warning", "error", "critical")
_LEVEL_ALIASES = {"warn": "warning", "fatal": "critical"}
_SITE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SORT_KEY_DIGITS = 21  # nanoseconds up to MAX_TIMESTAMP


@dataclass(frozen=True)
class Message:
    """A validated status message as stored."""

    site: str
    message: str
    log_level: str
    timestamp: Decimal
    message_id: str
    # The timestamp the client sent, when it was replaced (more than MAX_CLOCK_AHEAD_SECONDS
    # ahead of receipt); None when it was kept.
    replaced_timestamp: Decimal | None = None

    def answer(self) -> dict[str, Any]:
        """The ``POST /newlog`` answer: the entry, its id, and any adjustment made."""
        answer: dict[str, Any] = {**self.to_wire(), "id": self.sort_key}
        if self.replaced_timestamp is not None:
            answer["adjusted"] = {"timestamp": FUTURE_TIMESTAMP_ADJUSTMENT}
        return answer

    @property
    def sort_key(self) -> str:
        """Orders by time, then receipt; unique: ``<nanoseconds, 21 digits>#<id>``."""
        return f"{timestamp_nanos(self.timestamp):0{_SORT_KEY_DIGITS}d}#{self.message_id}"

    def to_wire(self) -> dict[str, Any]:
        """The recent-logs entry: timestamp a number of seconds, as posted."""
        return {
            "site": self.site,
            "message": self.message,
            "log_level": self.log_level,
            "timestamp": decimal_to_number(self.timestamp),
        }

    def broadcast_frame(self) -> bytes:
        """The WebSocket frame the frontend expects: timestamp a string of whole seconds."""
        frame = {
            "site": self.site,
            "message": self.message,
            "log_level": self.log_level,
            "timestamp": str(math.floor(self.timestamp)),
        }
        return json.dumps(frame, ensure_ascii=False).encode()


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body that must be one JSON object; duplicate keys are an error."""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge("body", f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("body", "body must be UTF-8 encoded JSON") from None
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except _DuplicateKey as dup:
        name = printable_name(dup.key)
        raise InvalidInput(name, f"field '{name}' appears more than once") from None
    except RecursionError:
        raise InvalidInput("body", "body is nested too deeply") from None
    except ValueError:
        raise InvalidInput("body", "body must be a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidInput("body", "body must be a JSON object, not " + _json_type(value))
    return value


def validate_message(
    fields: dict[str, Any], *, received_at: float, message_id: str | None = None
) -> Message:
    """Check a posted JSON object and return the message to store; raise InvalidInput."""
    timestamp = _validate_timestamp(fields.get("timestamp"), default=received_at)
    replaced = None
    if timestamp > received_at + MAX_CLOCK_AHEAD_SECONDS:
        # A wrong observatory clock would pin the message at the end of every view for the
        # whole retention; refusing it would lose it (scripts ignore the answer).
        replaced, timestamp = timestamp, _validate_timestamp(None, default=received_at)
    return Message(
        site=validate_site(fields.get("site")),
        message=_validate_text(fields.get("log_message")),
        log_level=_validate_level(fields.get("log_level")),
        timestamp=timestamp,
        message_id=message_id or new_message_id(),
        replaced_timestamp=replaced,
    )


def new_message_id(received_ns: int | None = None) -> str:
    """A unique id that orders messages of one timestamp by receipt: 32 hex digits, the
    receipt time in nanoseconds (16) then 64 random bits (16).

    Whole-second timestamps are common, so many messages share one; the sort key
    ``<timestamp>#<id>`` then keeps them in the order they were received, as they arrive live.
    """
    receipt = time.time_ns() if received_ns is None else received_ns
    return f"{receipt:016x}{secrets.randbits(64):016x}"


def validate_site(value: object, field: str = "site") -> str:
    """A site code: 1 to 64 letters, digits, '-' or '_'."""
    if value is None or value == "":
        raise InvalidInput(field, f"{field} is required")
    if not isinstance(value, str):
        raise InvalidInput(field, f"{field} must be a string, not {_json_type(value)}")
    if not _SITE_PATTERN.fullmatch(value):
        raise InvalidInput(
            field, f"{field} must be 1 to 64 characters of letters, digits, '-' and '_'"
        )
    return value


def parse_seconds(value: object, field: str) -> Decimal:
    """Unix seconds from an int, float or numeric string (a plain decimal): finite, positive
    after rounding to the nanosecond, not milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(field, f"{field} must be a number of unix seconds")
    if isinstance(value, str) and (
        len(value) > MAX_SECONDS_TEXT_LENGTH or not _SECONDS_TEXT.fullmatch(value)
    ):
        raise InvalidInput(
            field,
            f"{field} must be a number of unix seconds: as text, digits with an optional "
            f"fraction (no exponent), at most {MAX_SECONDS_TEXT_LENGTH} characters",
        )
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except (ArithmeticError, ValueError):
        raise InvalidInput(field, f"{field} must be a number of unix seconds") from None
    if not number.is_finite():
        raise InvalidInput(field, f"{field} must be a finite number")
    if number > MAX_TIMESTAMP:
        raise InvalidInput(field, f"{field} must be unix seconds (milliseconds given?)")
    if number.as_tuple().exponent < -9:  # type: ignore[operator]
        number = number.quantize(_TIMESTAMP_QUANTUM, rounding=ROUND_HALF_EVEN)
    if number <= 0:
        raise InvalidInput(field, f"{field} must be positive")
    if number == number.to_integral_value():
        return Decimal(int(number))
    return number.normalize()


def timestamp_nanos(seconds: Decimal) -> int:
    """Nanoseconds since the epoch (the sort key's time part); exact for parsed timestamps."""
    return int(seconds.scaleb(9).to_integral_value(rounding=ROUND_FLOOR))


def sort_key_after(seconds: Decimal) -> str:
    """The smallest sort key strictly after every message stamped at or before ``seconds``."""
    return f"{timestamp_nanos(seconds):0{_SORT_KEY_DIGITS}d}#~"


def decimal_to_number(value: Decimal) -> int | float:
    """A DynamoDB number as the JSON number it was posted as."""
    return int(value) if value == value.to_integral_value() else float(value)


def number_from_text(text: str) -> int | float:
    """``decimal_to_number(Decimal(text))`` without building a Decimal (recent-logs' hot loop)."""
    try:
        return int(text)
    except ValueError:
        return decimal_to_number(Decimal(text))


def printable_name(name: str) -> str:
    """A client-chosen name safe to echo in an error: valid UTF-8, at most 64 characters."""
    safe = name.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= 64 else safe[:61] + "..."


def _validate_text(value: object) -> str:
    if value is None:
        raise InvalidInput("log_message", "log_message is required")
    if not isinstance(value, str):
        raise InvalidInput("log_message", f"log_message must be a string, not {_json_type(value)}")
    if not value:
        raise InvalidInput("log_message", "log_message must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("log_message", "log_message is not valid Unicode") from None
    if size > MAX_MESSAGE_BYTES:
        raise InvalidInput(
            "log_message", f"log_message is {size} bytes, at most {MAX_MESSAGE_BYTES} allowed"
        )
    return value


def _validate_level(value: object) -> str:
    if value is None:
        return "info"
    if not isinstance(value, str):
        raise InvalidInput("log_level", f"log_level must be a string, not {_json_type(value)}")
    level = value.strip().lower()
    level = _LEVEL_ALIASES.get(level, level)
    if level not in LEVELS:
        raise InvalidInput("log_level", "log_level must be one of " + ", ".join(LEVELS))
    return level


def _validate_timestamp(value: object, *, default: float) -> Decimal:
    if value is None:
        return parse_seconds(round(default, 6), "timestamp")
    return parse_seconds(value, "timestamp")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
