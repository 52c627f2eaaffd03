"""Structured JSON logs with the request id.

In AWS the functions use Lambda's JSON log format, which already writes each record as JSON
with the request id and the ``extra`` fields. Elsewhere (the local relay, tests)
``configure_logging`` installs an equivalent formatter. Never log whole events: they carry user
data.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from userstatus.model import Message

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = _request_id.get()
        if request_id:
            entry["requestId"] = request_id
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# Lambda's application log levels (AWS_LAMBDA_LOG_LEVEL, set from the function's logging
# configuration: docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-advanced.html)
# as Python levels; TRACE has no Python level and maps to DEBUG, as Lambda's runtime does.
_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
}


def configure_logging() -> None:
    """Outside Lambda's JSON log format, write JSON lines to stderr; set the level.

    The level is the function's configured one (``AWS_LAMBDA_LOG_LEVEL``), else ``LOG_LEVEL``,
    else INFO; an unknown name means INFO (and is logged), never a failed cold start.
    """
    root = logging.getLogger()
    if os.environ.get("AWS_LAMBDA_LOG_FORMAT") != "JSON" and not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    name = os.environ.get("AWS_LAMBDA_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO"
    level = _LEVELS.get(name.strip().upper())
    root.setLevel(logging.INFO if level is None else level)
    if level is None:
        logging.getLogger("userstatus").warning(
            "unknown log level; using INFO", extra={"level": name}
        )


def log_adjustments(message: Message) -> None:
    """Record what validation changed in a message (the original timestamp of a wrong clock)."""
    if message.replaced_timestamp is not None:
        logging.getLogger("userstatus").warning(
            "future timestamp replaced",
            extra={
                "site": message.site,
                "given_timestamp": str(message.replaced_timestamp),
                "stored_timestamp": str(message.timestamp),
            },
        )


def bind_request_id(context: object) -> str:
    """Remember the invocation's request id for the log lines it writes; return it."""
    request_id = str(getattr(context, "aws_request_id", "") or "")
    _request_id.set(request_id)
    return request_id
