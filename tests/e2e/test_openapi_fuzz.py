"""Schemathesis against the running relay with docs/openapi.yaml: no 5xx, answers as documented.

Every operation of the spec is tested through the relay's real HTTP port (so aiohttp, the
event builder and the handler are all in the path) in the three schemathesis phases: the
spec's examples, coverage (boundary and edge values of every parameter and body field) and
fuzzing (hypothesis-generated requests, valid and invalid). Each answer must be no server
error and conform to the spec: a documented status code, its content type, its headers and
its body schema. Generation is derandomized with a fixed seed and bounded by
``MAX_EXAMPLES`` per operation, so CI runs the same requests every time.

A second set of tests posts hand-picked requests (a valid message, each kind of 400, 413,
a duplicate key, deep nesting, a truncated recent-logs answer) and validates the answers
against the same spec.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from userstatus_local.process import RelayProcess

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
MAX_EXAMPLES = 60
SEED = 20261121
REQUEST_TIMEOUT = 10.0
# The generated requests get every check (schemathesis's --checks all: among them,
# positive_data_acceptance and negative_data_rejection, so the spec must accept exactly what the
# relay accepts) except unsupported_method: API Gateway itself answers 404 for a method no route
# has, not the 405 that check expects.
EXCLUDED_CHECKS = [unsupported_method]
# The hand-made requests below are checked for conformance of their answers.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_path(SPEC_PATH)
schema.config.seed = SEED
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
    database="none",
)


@pytest.fixture(scope="module")
def session() -> requests.Session:
    """One keep-alive HTTP session for every generated request."""
    return requests.Session()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_relay_answers_generated_requests_as_documented(
    case: Any, relay: RelayProcess, session: requests.Session
) -> None:
    # Given a generated request (spec example, boundary value or fuzzed, valid or not),
    # when the relay answers it, then the answer is no 5xx and conforms to the spec, and a request
    # the spec allows is accepted, one it forbids refused.
    case.call_and_validate(
        base_url=relay.http_url,
        session=session,
        excluded_checks=EXCLUDED_CHECKS,
        timeout=REQUEST_TIMEOUT,
    )


def _validate(
    method: str, path: str, response: requests.Response, **case_fields: Any
) -> requests.Response:
    """Validate one hand-made answer against the spec's operation ``method path``."""
    operation = schema[path][method]
    case = operation.Case(**case_fields)
    case.validate_response(response, checks=CHECKS)
    return response


def _post_raw(relay: RelayProcess, body: bytes) -> requests.Response:
    return requests.post(
        relay.http_url + "/newlog",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=REQUEST_TIMEOUT,
    )


def _post(relay: RelayProcess, fields: dict[str, Any]) -> requests.Response:
    response = _post_raw(relay, json.dumps(fields).encode())
    return _validate("POST", "/newlog", response, body=fields, media_type="application/json")


def _get(relay: RelayProcess, path: str, query: dict[str, str]) -> requests.Response:
    response = requests.get(relay.http_url + path, params=query, timeout=REQUEST_TIMEOUT)
    return _validate("GET", path, response, query=query)


def test_valid_message_round_trip_matches_the_spec(relay: RelayProcess, site: str) -> None:
    stored = _post(
        relay, {"site": site, "log_message": "Dome opening", "log_level": "WARN", "timestamp": 5}
    )
    assert stored.status_code == 200
    assert stored.json()["log_level"] == "warning"
    recent = _get(relay, "/recent-logs", {"site": site, "after_time": "0", "limit": "10"})
    assert recent.status_code == 200
    assert [entry["message"] for entry in recent.json()] == ["Dome opening"]
    online = _get(relay, "/onlineusers", {"site": site})
    assert online.json() == {"site": site, "connections": 0}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"log_message": "no site"}, "site"),
        ({"site": "bad site!", "log_message": "x"}, "site"),
        ({"site": "tst", "log_message": ""}, "log_message"),
        ({"site": "tst", "log_message": "é" * 8193}, "log_message"),
        ({"site": "tst", "log_message": "x", "log_level": "loud"}, "log_level"),
        ({"site": "tst", "log_message": "x", "timestamp": 1.7e12}, "timestamp"),
        ({"site": "tst", "log_message": "x", "timestamp": True}, "timestamp"),
        ({"site": "tst", "log_message": "x", "timestamp": "NaN"}, "timestamp"),
    ],
)
def test_bad_messages_are_answered_400_as_documented(
    relay: RelayProcess, fields: dict[str, Any], field: str
) -> None:
    answer = _post(relay, fields)
    assert answer.status_code == 400
    assert answer.json()["field"] == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"site": "tst", "site": "tst", "log_message": "x"}', "site"),
        (b"[" * 10_000 + b"]" * 10_000, "body"),
        (b'{"site": "tst", "log_message": "\xff"}', "body"),
        (b"", "body"),
        (b"null", "body"),
    ],
    ids=["duplicate-key", "deep-nesting", "not-utf8", "empty", "null"],
)
def test_malformed_bodies_are_answered_400_as_documented(
    relay: RelayProcess, body: bytes, field: str
) -> None:
    answer = _validate(
        "POST", "/newlog", _post_raw(relay, body), body={}, media_type="application/json"
    )
    assert answer.status_code == 400
    assert answer.json()["field"] == field


def test_body_over_the_limit_is_answered_413_as_documented(relay: RelayProcess) -> None:
    body = json.dumps({"site": "tst", "log_message": "x" * 200_000}).encode()
    answer = _validate(
        "POST", "/newlog", _post_raw(relay, body), body={}, media_type="application/json"
    )
    assert answer.status_code == 413
    assert answer.json()["field"] == "body"


@pytest.mark.parametrize(
    "query",
    [
        {"site": "tst", "limit": "0"},
        {"site": "tst", "limit": "1001"},
        {"site": "tst", "after_time": "1700000000000"},
        {"site": "tst", "after_time": "-1"},
        {"after_time": "0"},
    ],
)
def test_bad_recent_logs_queries_are_answered_400_as_documented(
    relay: RelayProcess, query: dict[str, str]
) -> None:
    assert _get(relay, "/recent-logs", query).status_code == 400


def test_truncated_recent_logs_answer_matches_the_spec(relay: RelayProcess) -> None:
    # Given more stored text than fits the 5.5 MB answer budget (16 KiB messages of one site,
    # of a character JSON escapes six-fold, so few posts suffice),
    site = "e2e-big-" + uuid.uuid4().hex[:8]
    message = "\x01" * 16 * 1024
    count = 5_600_000 // (6 * len(message)) + 2
    for sequence in range(count):
        body = {"site": site, "log_message": message, "timestamp": 1_000_000 + sequence}
        assert _post_raw(relay, json.dumps(body).encode()).status_code == 200
    # when every one of them is asked for,
    answer = _get(relay, "/recent-logs", {"site": site, "after_time": "0"})
    # then the oldest are left out, the header says so, and the answer still matches the spec.
    assert answer.status_code == 200
    assert answer.headers["X-Userstatus-Truncated"] == "true"
    entries = answer.json()
    assert 0 < len(entries) < count
    assert entries[-1]["timestamp"] == 1_000_000 + count - 1
