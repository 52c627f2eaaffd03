"""Sample Lambda events, recorded shapes of API Gateway and DynamoDB Streams events."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent


@cache
def _raw(name: str) -> dict[str, Any]:
    return json.loads((_HERE / f"{name}.json").read_text())


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``tests/events/<name>.json``, safe to modify."""
    return copy.deepcopy(_raw(name))


def with_body(name: str, body: dict[str, Any] | str) -> dict[str, Any]:
    """A sample event whose body is replaced (a dict is JSON-encoded)."""
    event = load_event(name)
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


def with_query(name: str, query: dict[str, str] | None) -> dict[str, Any]:
    """A sample event whose query string parameters are replaced."""
    event = load_event(name)
    event["queryStringParameters"] = query
    return event
