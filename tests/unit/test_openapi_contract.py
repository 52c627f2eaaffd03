"""docs/openapi.yaml is the contract: the handlers' answers, errors included, match its schemas.

Every answer of ``userstatus.http_api.handler`` (on moto) for valid and each kind of invalid
request is checked against the response object the spec gives for that path, method and
status: the JSON body against its schema, the documented headers against theirs. The examples
in the spec are checked too, request examples by posting them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from botocore.stub import Stubber
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.events import load_event, with_body, with_query
from tests.fakes.lambda_context import FakeLambdaContext
from userstatus import http_api, websocket_api
from userstatus.model import MAX_BODY_BYTES, MAX_TIMESTAMP, Message
from userstatus.routes import HTTP_ROUTES, WEBSOCKET_ACTIONS
from userstatus.runtime import runtime

pytestmark = pytest.mark.usefixtures("dynamodb")

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
_SPEC_URI = "urn:userstatus:openapi"
_REGISTRY: Registry = Registry().with_resource(
    _SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
CORS_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
)


def validator(pointer: str) -> jsonschema.Draft202012Validator:
    """A validator of the schema at ``pointer`` (``/components/...``) in the spec."""
    return jsonschema.Draft202012Validator(
        {"$ref": f"{_SPEC_URI}#{pointer}"},
        registry=_REGISTRY,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` of the spec (response and header objects)."""
    while "$ref" in node:
        found: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


def call(event: dict[str, Any]) -> dict[str, Any]:
    return http_api.handler(event, FakeLambdaContext())


def assert_matches_spec(path: str, method: str, response: dict[str, Any]) -> Any:
    """The response is documented for this operation and its body and headers match; the body."""
    status = str(response["statusCode"])
    responses = SPEC["paths"][path][method]["responses"]
    assert status in responses, f"{method.upper()} {path} answered undocumented {status}"
    documented = resolve(responses[status])
    headers = response["headers"]
    assert headers["Content-Type"] == "application/json"
    for name in CORS_HEADERS:
        assert name in headers, name
    body = json.loads(response["body"].encode("utf-8"))
    schema_pointer = "/paths/" + path.replace("/", "~1") + f"/{method}/responses/{status}"
    if "$ref" in responses[status]:
        schema_pointer = responses[status]["$ref"].removeprefix("#")
    validator(schema_pointer + "/content/application~1json/schema").validate(body)
    for name, header in documented.get("headers", {}).items():
        header = resolve(header)
        if header.get("required"):
            assert name in headers, f"{name} is required on {status}"
        if name in headers:
            jsonschema.Draft202012Validator(header["schema"]).validate(headers[name])
    for name in headers:
        if name.lower().startswith("x-"):
            assert name in documented.get("headers", {}), f"undocumented header {name}"
    return body


@pytest.fixture
def throttled_dynamodb() -> Iterator[Stubber]:
    """The next DynamoDB put answered ThrottlingException."""
    with Stubber(runtime().messages._client) as stub:
        stub.add_client_error("put_item", "ThrottlingException", http_status_code=400)
        yield stub


def test_spec_is_valid_openapi_3_1() -> None:
    assert SPEC["openapi"].startswith("3.1")
    validate_openapi(SPEC)


def test_spec_documents_exactly_the_routes_the_handler_serves() -> None:
    documented = {
        f"{method.upper()} {path}"
        for path, operations in SPEC["paths"].items()
        for method in operations
    }
    assert documented == {route.route_key for route in HTTP_ROUTES} == set(http_api.ROUTES)
    assert SPEC["x-websocket"]["clientToServer"].keys() == set(WEBSOCKET_ACTIONS)


def test_every_schema_example_matches_its_schema() -> None:
    for name, schema in SPEC["components"]["schemas"].items():
        for example in [schema["example"]] if "example" in schema else []:
            validator(f"/components/schemas/{name}").validate(example)
    for name, response in SPEC["components"]["responses"].items():
        content = response["content"]["application/json"]
        examples = [content["example"]] if "example" in content else []
        examples += [e["value"] for e in content.get("examples", {}).values()]
        assert examples, name
        for example in examples:
            validator(f"/components/responses/{name}/content/application~1json/schema").validate(
                example
            )


def test_request_examples_are_accepted_and_answered_as_documented() -> None:
    content = SPEC["paths"]["/newlog"]["post"]["requestBody"]["content"]["application/json"]
    for example in content["examples"].values():
        validator("/components/schemas/NewLogRequest").validate(example["value"])
        response = call(with_body("http_post_newlog", example["value"]))
        assert response["statusCode"] == 200, response["body"]
        body = assert_matches_spec("/newlog", "post", response)
        assert body["message"] == example["value"]["log_message"]


@pytest.mark.parametrize(
    "fields",
    [
        {"site": "tst", "log_message": "x"},
        {"site": "A" * 64, "log_message": "é" * 8192, "log_level": " FATAL ", "timestamp": "1000"},
        {"site": "a-b_c", "log_message": "\x00\n\u2028", "log_level": None, "timestamp": None},
        {"site": "tst", "log_message": "max", "timestamp": MAX_TIMESTAMP},
        {"site": "tst", "log_message": "nano", "timestamp": 1604514063.123456789},
        {"site": "tst", "log_message": "tiny", "timestamp": 1e-9},
        {"site": "tst", "log_message": "extra", "unknown": {"nested": [1, 2]}},
    ],
)
def test_accepted_posts_match_the_200_schema(fields: dict[str, Any]) -> None:
    validator("/components/schemas/NewLogRequest").validate(fields)
    response = call(with_body("http_post_newlog", fields))
    assert response["statusCode"] == 200, response["body"]
    assert_matches_spec("/newlog", "post", response)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"log_message": "x"}, "site"),
        ({"site": "../etc", "log_message": "x"}, "site"),
        ({"site": "tst"}, "log_message"),
        ({"site": "tst", "log_message": ""}, "log_message"),
        ({"site": "tst", "log_message": "x" * 16385}, "log_message"),
        ({"site": "tst", "log_message": "x", "log_level": "verbose"}, "log_level"),
        ({"site": "tst", "log_message": "x", "log_level": 3}, "log_level"),
        ({"site": "tst", "log_message": "x", "timestamp": 1604514063000}, "timestamp"),
        ({"site": "tst", "log_message": "x", "timestamp": 0}, "timestamp"),
        ({"site": "tst", "log_message": "x", "timestamp": True}, "timestamp"),
        ({"site": "tst", "log_message": "x", "timestamp": "soon"}, "timestamp"),
        ('{"site": "tst", "site": "tst", "log_message": "x"}', "site"),
        ("[1, 2]", "body"),
        ("not json", "body"),
        ("[" * 50_000 + "]" * 50_000, "body"),
    ],
)
def test_refused_posts_match_the_400_schema_and_violate_the_request_schema(
    body: dict[str, Any] | str, field: str
) -> None:
    if isinstance(body, dict):
        assert not validator("/components/schemas/NewLogRequest").is_valid(body)
    response = call(with_body("http_post_newlog", body))
    assert response["statusCode"] == 400
    assert assert_matches_spec("/newlog", "post", response)["field"] == field


def test_bad_base64_and_missing_bodies_match_the_400_schema() -> None:
    event = with_body("http_post_newlog", "not base64!")
    event["isBase64Encoded"] = True
    assert assert_matches_spec("/newlog", "post", call(event))["field"] == "body"
    event = load_event("http_post_newlog")
    del event["body"]
    assert assert_matches_spec("/newlog", "post", call(event))["field"] == "body"


def test_oversize_bodies_match_the_413_schema() -> None:
    big = json.dumps({"site": "tst", "log_message": "x" * MAX_BODY_BYTES})
    response = call(with_body("http_post_newlog", big))
    assert response["statusCode"] == 413
    assert_matches_spec("/newlog", "post", response)
    event = with_body("http_post_newlog", base64.b64encode(big.encode()).decode())
    event["isBase64Encoded"] = True
    response = call(event)
    assert response["statusCode"] == 413
    assert_matches_spec("/newlog", "post", response)


def test_store_outage_matches_the_503_schema_with_retry_after(
    throttled_dynamodb: Stubber,
) -> None:
    response = call(load_event("http_post_newlog"))
    assert response["statusCode"] == 503
    assert_matches_spec("/newlog", "post", response)
    assert response["headers"]["Retry-After"] == "1"


def test_unexpected_errors_match_the_500_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internals")

    monkeypatch.setattr(runtime().messages, "put", explode)
    monkeypatch.setattr(runtime().messages, "pages_newest_first", explode)
    monkeypatch.setattr(runtime().connections, "count", explode)
    for path, method, event in (
        ("/newlog", "post", load_event("http_post_newlog")),
        ("/recent-logs", "get", load_event("http_get_recent_logs")),
        ("/onlineusers", "get", load_event("http_get_onlineusers")),
    ):
        response = call(event)
        assert response["statusCode"] == 500
        assert_matches_spec(path, method, response)


def test_unknown_route_matches_the_404_schema() -> None:
    # API Gateway answers unknown routes itself ({"message": "Not Found"}, a spec example);
    # the handler's own 404 for a route key it does not know is documented too.
    event = load_event("http_post_newlog")
    event["routeKey"] = "POST /nothing"
    response = call(event)
    assert response["statusCode"] == 404
    assert_matches_spec("/newlog", "post", response)


def test_recent_logs_match_the_200_schema_and_the_truncation_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for i, level in enumerate(["debug", "WARN", "critical"]):
        call(
            with_body(
                "http_post_newlog",
                {"site": "tst", "log_message": f"m{i}", "log_level": level, "timestamp": 10.5 + i},
            )
        )
    response = call(with_query("http_get_recent_logs", {"site": "tst", "after_time": "0"}))
    body = assert_matches_spec("/recent-logs", "get", response)
    assert [entry["timestamp"] for entry in body] == [10.5, 11.5, 12.5]
    assert http_api.TRUNCATED_HEADER not in response["headers"]

    # (A budget of the two newest entries: the real one is tested in test_http_api.py.)
    newest_two = json.dumps(json.dumps(body[1:], separators=(",", ":")))
    monkeypatch.setattr(http_api, "MAX_ESCAPED_BODY_BYTES", len(newest_two) - 2)
    response = call(with_query("http_get_recent_logs", {"site": "tst", "after_time": "0"}))
    body = assert_matches_spec("/recent-logs", "get", response)
    assert response["headers"][http_api.TRUNCATED_HEADER] == "true"
    assert [entry["message"] for entry in body] == ["m1", "m2"]

    response = call(with_query("http_get_recent_logs", {"site": "empty"}))
    assert assert_matches_spec("/recent-logs", "get", response) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (None, "site"),
        ({"site": "a b"}, "site"),
        ({"site": "tst", "limit": "0"}, "limit"),
        ({"site": "tst", "limit": "1001"}, "limit"),
        ({"site": "tst", "limit": "-1"}, "limit"),
        ({"site": "tst", "after_time": "yesterday"}, "after_time"),
        ({"site": "tst", "after_time": "1604514063000"}, "after_time"),
        ({"site": "tst", "after_time": "-5"}, "after_time"),
    ],
)
def test_bad_recent_logs_queries_match_the_400_schema(
    query: dict[str, str] | None, field: str
) -> None:
    response = call(with_query("http_get_recent_logs", query))
    assert response["statusCode"] == 400
    assert assert_matches_spec("/recent-logs", "get", response)["field"] == field


def test_onlineusers_answers_match_their_schemas(dynamodb: Any) -> None:
    runtime().connections.add("tst", "a=", now=2e9)
    body = assert_matches_spec("/onlineusers", "get", call(load_event("http_get_onlineusers")))
    assert body == {"site": "tst", "connections": 1}
    response = call(with_query("http_get_onlineusers", {"site": ""}))
    assert response["statusCode"] == 400
    assert assert_matches_spec("/onlineusers", "get", response)["field"] == "site"


def test_read_outages_match_the_503_schema() -> None:
    with Stubber(runtime().messages._client) as stub:
        stub.add_client_error("query", "ProvisionedThroughputExceededException")
        stub.add_client_error("query", "InternalServerError", http_status_code=500)
        for path, event in (
            ("/recent-logs", load_event("http_get_recent_logs")),
            ("/onlineusers", load_event("http_get_onlineusers")),
        ):
            response = call(event)
            assert response["statusCode"] == 503
            assert_matches_spec(path, "get", response)


# -- WebSocket frames -----------------------------------------------------------------------


def ws_answer(event: dict[str, Any]) -> tuple[int, Any]:
    response = websocket_api.handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"]) if "body" in response else None


def test_websocket_stored_newlog_frame_is_answered_with_no_frame() -> None:
    status, body = ws_answer(load_event("ws_newlog"))
    assert (status, body) == (200, None)
    assert "newlogAck" not in SPEC["x-websocket"]["serverToClient"]


@pytest.mark.parametrize(
    "frame",
    [
        '{"action": "newlog", "site": "tst"}',
        '{"action": "newlog", "site": "tst", "log_message": "x", "log_level": "loud"}',
        "not json",
        '{"action": "newlog", "action": "newlog", "site": "tst", "log_message": "x"}',
    ],
)
def test_websocket_error_frames_match_their_schema(frame: str) -> None:
    status, body = ws_answer(with_body("ws_newlog", frame))
    assert status == 400
    validator("/components/schemas/ErrorFrame").validate(body)
    assert body["status"] == 400


def test_websocket_unsupported_frames_list_the_supported_actions() -> None:
    event = with_body("ws_newlog", '{"action": "subscribe"}')
    event["requestContext"]["routeKey"] = "$default"
    status, body = ws_answer(event)
    assert status == 400
    validator("/components/schemas/ErrorFrame").validate(body)
    assert body["supported_actions"] == list(WEBSOCKET_ACTIONS)


def test_websocket_newlog_frame_without_its_route_matches_the_403_schema() -> None:
    # Given a stage deployed with post_auth=iam: no newlog route, so the frame reaches $default
    event = load_event("ws_newlog")
    event["requestContext"]["routeKey"] = "$default"
    status, body = ws_answer(event)
    assert status == 403
    validator("/components/schemas/ErrorFrame").validate(body)
    assert body["status"] == 403


def test_websocket_connect_rejection_matches_the_documented_body() -> None:
    status, body = ws_answer(with_query("ws_connect", None))
    assert status == 400
    assert body == SPEC["x-websocket"]["connect"]["rejections"]["400"]


def test_broadcast_frame_matches_its_schema() -> None:
    message = Message("tst", "é\x00", "error", Decimal(MAX_TIMESTAMP), "0" * 32)
    frame = json.loads(message.broadcast_frame())
    validator("/components/schemas/BroadcastFrame").validate(frame)
    assert frame["timestamp"] == str(MAX_TIMESTAMP)
