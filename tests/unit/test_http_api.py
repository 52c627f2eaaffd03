"""The HTTP API handler against moto: every route, every bad input, faults."""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from botocore.stub import Stubber

from tests.events import load_event, with_body, with_query
from tests.fakes.lambda_context import FakeLambdaContext
from userstatus import http_api
from userstatus.model import Message
from userstatus.routes import HTTP_ROUTES
from userstatus.runtime import runtime

pytestmark = pytest.mark.usefixtures("dynamodb")


def call(event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    response = http_api.handler(event, FakeLambdaContext())
    assert response["headers"]["Access-Control-Allow-Origin"]
    return response["statusCode"], response["headers"], json.loads(response["body"])


def post(fields: dict[str, Any] | str) -> tuple[int, Any]:
    status, _, body = call(with_body("http_post_newlog", fields))
    return status, body


def recent(**query: str) -> list[dict[str, Any]]:
    status, _, body = call(with_query("http_get_recent_logs", query))
    assert status == 200, body
    assert isinstance(body, list)
    return body


def stored_items(dynamodb: Any) -> list[dict[str, Any]]:
    return dynamodb.scan(TableName="messages-test")["Items"]


def test_every_route_in_the_route_table_is_served() -> None:
    assert set(http_api.ROUTES) == {route.route_key for route in HTTP_ROUTES}


def test_post_stores_and_answers_what_was_stored(dynamodb: Any) -> None:
    status, _, body = call(load_event("http_post_newlog"))
    assert status == 200
    assert body["site"] == "tst"
    assert body["message"] == "Slewing telescope..."
    assert body["log_level"] == "info"
    assert body["timestamp"] == 1604514063
    [item] = stored_items(dynamodb)
    assert item["sk"]["S"] == body["id"]
    assert item["message"]["S"] == "Slewing telescope..."


def test_stored_message_expires_after_retention(dynamodb: Any) -> None:
    post({"site": "tst", "log_message": "x"})
    [item] = stored_items(dynamodb)
    ttl = int(item["expires_at"]["N"])
    received = float(item["timestamp"]["N"])
    assert ttl - received == pytest.approx(7 * 86400, abs=2)


def test_body_without_content_type_or_base64_encoded_is_accepted() -> None:
    event = load_event("http_post_newlog")
    event["headers"].pop("content-type", None)
    raw = json.dumps({"site": "tst", "log_message": "encoded é"}).encode()
    event["body"] = base64.b64encode(raw).decode()
    event["isBase64Encoded"] = True
    status, _, body = call(event)
    assert status == 200
    assert body["message"] == "encoded é"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"log_message": "no site"}, "site"),
        ({"site": "", "log_message": "x"}, "site"),
        ({"site": "bad site!", "log_message": "x"}, "site"),
        ({"site": "tst"}, "log_message"),
        ({"site": "tst", "log_message": ""}, "log_message"),
        ({"site": "tst", "log_message": 42}, "log_message"),
        ({"site": "tst", "log_message": "x" * 16385}, "log_message"),
        ({"site": "tst", "log_message": "x", "log_level": "loud"}, "log_level"),
        ({"site": "tst", "log_message": "x", "timestamp": "NaN"}, "timestamp"),
        ({"site": "tst", "log_message": "x", "timestamp": -1}, "timestamp"),
        ("not json at all", "body"),
        ('["site", "tst"]', "body"),
        ("", "body"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(
    dynamodb: Any, body: dict[str, Any] | str, field: str
) -> None:
    status, answer = post(body)
    assert status == 400
    assert answer["field"] == field
    assert field in answer["error"]
    assert stored_items(dynamodb) == []


def test_missing_and_bad_base64_bodies_are_400(dynamodb: Any) -> None:
    event = load_event("http_post_newlog")
    del event["body"]
    assert call(event)[0] == 400
    event = load_event("http_post_newlog")
    event["isBase64Encoded"] = True
    event["body"] = "***not base64***"
    status, _, answer = call(event)
    assert (status, answer["field"]) == (400, "body")
    assert stored_items(dynamodb) == []


def test_oversize_body_is_413(dynamodb: Any) -> None:
    status, answer = post({"site": "tst", "log_message": "x", "pad": "y" * 200_000})
    assert status == 413
    assert answer["field"] == "body"
    assert stored_items(dynamodb) == []


def test_a_timestamp_more_than_a_day_ahead_is_replaced_by_the_time_of_receipt(
    dynamodb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an observatory whose clock is a year ahead (its scripts ignore the answer, so
    # refusing would lose the message)
    future = time.time() + 365 * 86400
    before = time.time()
    status, body = post({"site": "tst", "log_message": "clock ahead", "timestamp": future})
    after = time.time()
    # Then the message is stored at the time of receipt, and the answer says so
    assert status == 200
    assert before <= body["timestamp"] <= after
    assert body["adjusted"] == {
        "timestamp": "more than 24 hours ahead of receipt: stored at the time of receipt"
    }
    [entry] = recent(site="tst")
    assert entry["timestamp"] == body["timestamp"]
    # And the log keeps the value the observatory sent
    [record] = [r for r in caplog.records if r.getMessage() == "future timestamp replaced"]
    assert Decimal(str(record.__dict__["given_timestamp"])) == Decimal(repr(future))


def test_a_timestamp_up_to_a_day_ahead_is_kept() -> None:
    soon = int(time.time()) + 86400 - 60
    status, body = post({"site": "tst", "log_message": "clock a bit ahead", "timestamp": soon})
    assert (status, body["timestamp"]) == (200, soon)
    assert "adjusted" not in body


def test_two_messages_in_the_same_second_are_both_kept() -> None:
    for text in ("first", "second"):
        assert post({"site": "tst", "log_message": text, "timestamp": 1604514063})[0] == 200
    logs = recent(site="tst", after_time="1604514062")
    assert sorted(m["message"] for m in logs) == ["first", "second"]
    assert {m["timestamp"] for m in logs} == {1604514063}


def test_messages_with_the_same_timestamp_come_back_in_the_order_received() -> None:
    # Whole seconds are common: the frontend shows history in the order recent-logs gives it.
    texts = [f"step {n}" for n in range(30)]
    for text in texts:
        assert post({"site": "tst", "log_message": text, "timestamp": 1700000000})[0] == 200
    assert [entry["message"] for entry in recent(site="tst", after_time="0")] == texts
    assert [entry["message"] for entry in recent(site="tst", after_time="0", limit="5")] == (
        texts[-5:]
    )


def test_recent_logs_are_oldest_first_after_the_given_time_and_site_only() -> None:
    for ts, site, text in [
        (300, "tst", "c"),
        (100, "tst", "a"),
        (200, "tst", "b"),
        (250, "other", "x"),
        (50, "tst", "too old"),
    ]:
        post({"site": site, "log_message": text, "timestamp": ts})
    logs = recent(site="tst", after_time="50")
    assert [m["message"] for m in logs] == ["a", "b", "c"]
    assert logs[0] == {"site": "tst", "message": "a", "log_level": "info", "timestamp": 100}


def test_recent_logs_default_to_the_last_24_hours() -> None:
    post({"site": "tst", "log_message": "yesterday", "timestamp": time.time() - 25 * 3600})
    post({"site": "tst", "log_message": "today", "timestamp": time.time() - 3600})
    assert [m["message"] for m in recent(site="tst")] == ["today"]


def test_recent_logs_read_every_page(dynamodb: Any) -> None:
    # Given 2,500 messages of about 1 KB: more than one 1 MB query page.
    text = "x" * 1000
    seed(dynamodb, [_message("tst", f"{i}:{text}", 1000 + i) for i in range(2500)])
    logs = recent(site="tst", after_time="1")
    assert len(logs) == 2500
    assert [int(m["message"].split(":")[0]) for m in logs] == list(range(2500))


def test_limit_returns_the_newest_still_oldest_first() -> None:
    for i in range(20):
        runtime().messages.put(_message("tst", str(i), 1000 + i), received_at=2000)
    assert [m["message"] for m in recent(site="tst", after_time="1", limit="3")] == [
        "17",
        "18",
        "19",
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "site"),
        ({"site": "a,b"}, "site"),
        ({"site": "tst", "after_time": "yesterday"}, "after_time"),
        ({"site": "tst", "after_time": "-3"}, "after_time"),
        ({"site": "tst", "limit": "0"}, "limit"),
        ({"site": "tst", "limit": "1001"}, "limit"),
        ({"site": "tst", "limit": "ten"}, "limit"),
        ({"site": "tst", "limit": "²"}, "limit"),
        ({"site": "tst", "limit": "٣"}, "limit"),
    ],
)
def test_bad_recent_logs_queries_are_400(query: dict[str, str], field: str) -> None:
    status, _, body = call(with_query("http_get_recent_logs", query))
    assert (status, body["field"]) == (400, field)


# Lambda's limit on a synchronous response (the serialized invocation payload), 6 MB:
# docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
LAMBDA_RESPONSE_LIMIT = 6_291_456
# Each part escapes once in the entry's JSON and again in the response's body string.
ESCAPE_HEAVY = '"\\\x01é'


def test_a_history_past_lambdas_6_mb_response_limit_keeps_the_newest_that_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a site whose history is full of characters that need escaping, far more than fits
    text = ESCAPE_HEAVY * (16 * 1024 // len(ESCAPE_HEAVY.encode()))
    stored = 200
    for i in range(stored):
        message = Message("tst", text, "info", Decimal(1000 + i), f"{i:032x}")
        runtime().messages.put(message, received_at=2000)
    client = runtime().messages._client
    real_query = client.query
    items_read: list[int] = []

    def counting_query(**request: Any) -> Any:
        page = real_query(**request)
        items_read.append(len(page["Items"]))
        return page

    monkeypatch.setattr(client, "query", counting_query)
    # When all of it is asked for
    response = http_api.handler(
        with_query("http_get_recent_logs", {"site": "tst", "after_time": "0"}),
        FakeLambdaContext(),
    )
    # Then the response Lambda serializes is within its limit, however the runtime's
    # marshaller escapes it (ensure_ascii or not), and it is not trimmed more than needed
    sizes = [
        len(json.dumps(response, ensure_ascii=True)),
        len(json.dumps(response, ensure_ascii=False).encode()),
    ]
    entry_size = len(json.dumps(json.dumps(recent_entry(text)), ensure_ascii=True))
    assert max(sizes) <= LAMBDA_RESPONSE_LIMIT
    assert max(sizes) > LAMBDA_RESPONSE_LIMIT - http_api.RESPONSE_MARGIN_BYTES - entry_size
    # and it holds the newest entries, oldest first, saying some were left out
    assert response["statusCode"] == 200
    assert response["headers"][http_api.TRUNCATED_HEADER] == "true"
    body = json.loads(response["body"])
    assert [int(entry["timestamp"]) for entry in body] == list(
        range(1000 + stored - len(body), 1000 + stored)
    )
    assert body[-1]["message"] == text
    # and no more was read than one query page beyond what was answered
    assert sum(items_read) - len(body) < items_read[0]
    assert sum(items_read) < stored


def recent_entry(text: str) -> dict[str, Any]:
    return {"site": "tst", "message": text, "log_level": "info", "timestamp": 1000}


def test_a_history_just_within_the_budget_is_not_truncated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for i in range(4):
        runtime().messages.put(_message("tst", f"{i}" * 100, 1000 + i), received_at=2000)
    whole = http_api.handler(
        with_query("http_get_recent_logs", {"site": "tst", "after_time": "0"}),
        FakeLambdaContext(),
    )["body"]
    monkeypatch.setattr(http_api, "MAX_ESCAPED_BODY_BYTES", len(json.dumps(whole)) - 2)
    status, headers, body = call(
        with_query("http_get_recent_logs", {"site": "tst", "after_time": "0"})
    )
    assert (status, len(body)) == (200, 4)
    assert http_api.TRUNCATED_HEADER not in headers
    monkeypatch.setattr(http_api, "MAX_ESCAPED_BODY_BYTES", len(json.dumps(whole)) - 3)
    status, headers, body = call(
        with_query("http_get_recent_logs", {"site": "tst", "after_time": "0"})
    )
    assert [m["message"][0] for m in body] == ["1", "2", "3"]
    assert headers[http_api.TRUNCATED_HEADER] == "true"


def test_onlineusers_counts_connections_without_exposing_ids(dynamodb: Any) -> None:
    connections = runtime().connections
    for connection_id in ("a=", "b=", "c="):
        connections.add("tst", connection_id, now=time.time())
    connections.add("other", "d=", now=time.time())
    connections.add("tst", "stale=", now=time.time() - 3 * 3600)
    status, _, body = call(load_event("http_get_onlineusers"))
    assert (status, body) == (200, {"site": "tst", "connections": 3})


def test_onlineusers_requires_a_site() -> None:
    status, _, body = call(with_query("http_get_onlineusers", None))
    assert (status, body["field"]) == (400, "site")


def test_unknown_route_is_404_json() -> None:
    event = load_event("http_get_onlineusers")
    event["routeKey"] = "GET /nothing"
    status, _, body = call(event)
    assert status == 404
    assert "error" in body


def test_cors_headers_follow_the_allowed_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "https://www.photonranch.org, https://x.org")
    runtime.cache_clear()
    response = http_api.handler(load_event("http_get_recent_logs"), FakeLambdaContext())
    assert response["headers"]["Access-Control-Allow-Origin"] == "https://www.photonranch.org"
    event = load_event("http_get_recent_logs")
    event["headers"]["origin"] = "https://evil.example"
    response = http_api.handler(event, FakeLambdaContext())
    assert "Access-Control-Allow-Origin" not in response["headers"]
    assert response["headers"]["Vary"] == "Origin"


def test_preflight_is_answered_with_cors_headers() -> None:
    event = load_event("http_post_newlog")
    event["requestContext"]["http"]["method"] = "OPTIONS"
    response = http_api.handler(event, FakeLambdaContext())
    assert response["statusCode"] == 204
    assert "POST" in response["headers"]["Access-Control-Allow-Methods"]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("InternalServerError", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_dynamodb_throttling_and_faults_are_503_with_retry_after(
    dynamodb: Any, code: str, status: int
) -> None:
    client = runtime().messages._client
    with Stubber(client) as stub:
        stub.add_client_error("put_item", code, http_status_code=status)
        status_seen, headers, body = call(load_event("http_post_newlog"))
    assert status_seen == 503
    assert headers["Retry-After"] == "1"
    assert "error" in body
    assert stored_items(dynamodb) == []


def test_throttled_read_is_503() -> None:
    with Stubber(runtime().messages._client) as stub:
        stub.add_client_error("query", "ThrottlingException", http_status_code=400)
        status, headers, _ = call(load_event("http_get_recent_logs"))
    assert status == 503
    assert "Retry-After" in headers


def test_unexpected_error_is_500_with_request_id_and_no_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(runtime().messages, "put", explode)
    context = FakeLambdaContext()
    response = http_api.handler(load_event("http_post_newlog"), context)
    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {
        "error": "internal error",
        "request_id": context.aws_request_id,
    }
    assert "secret" not in response["body"]


def _message(site: str, text: str, ts: int) -> Message:
    return Message(site, text, "info", Decimal(ts), f"{ts:032x}")


def seed(dynamodb: Any, messages: list[Message]) -> None:
    """Write many messages at once, as the store would write them one by one."""
    store = runtime().messages
    items = [{"PutRequest": {"Item": store.item_of(m, received_at=2000)}} for m in messages]
    for start in range(0, len(items), 25):
        dynamodb.batch_write_item(RequestItems={"messages-test": items[start : start + 25]})
