"""The WebSocket handler against moto: connect, disconnect, newlog, unsupported frames."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.events import load_event, with_body, with_query
from tests.fakes.lambda_context import FakeLambdaContext
from userstatus import websocket_api
from userstatus.routes import WEBSOCKET_ACTIONS, WEBSOCKET_ROUTES
from userstatus.runtime import runtime

pytestmark = pytest.mark.usefixtures("dynamodb")


def call(event: dict[str, Any]) -> tuple[int, Any]:
    response = websocket_api.handler(event, FakeLambdaContext())
    body = response.get("body")
    return response["statusCode"], json.loads(body) if body else None


def connection_rows(dynamodb: Any) -> list[tuple[str, str]]:
    items = dynamodb.scan(TableName="connections-test")["Items"]
    return sorted((i["site"]["S"], i["connection_id"]["S"]) for i in items)


def test_every_route_in_the_route_table_is_served() -> None:
    assert set(websocket_api.ROUTES) == {route.route_key for route in WEBSOCKET_ROUTES}


def test_connect_records_the_connection_under_its_site(dynamodb: Any) -> None:
    assert call(load_event("ws_connect")) == (200, None)
    assert connection_rows(dynamodb) == [("tst", "VfgCPdIeoAMCJxA=")]
    [item] = dynamodb.scan(TableName="connections-test")["Items"]
    lifetime = int(item["expires_at"]["N"]) - int(item["connected_at"]["N"])
    assert 2 * 3600 < lifetime <= 3 * 3600


@pytest.mark.parametrize("query", [None, {}, {"site": ""}, {"site": "no spaces"}])
def test_connect_without_a_valid_site_is_rejected_with_400(
    dynamodb: Any, query: dict[str, str] | None
) -> None:
    status, body = call(with_query("ws_connect", query))
    assert status == 400
    assert body["field"] == "site"
    assert connection_rows(dynamodb) == []


def test_disconnect_forgets_the_connection(dynamodb: Any) -> None:
    call(load_event("ws_connect"))
    other = load_event("ws_connect")
    other["requestContext"]["connectionId"] = "OtherConn="
    call(other)
    assert call(load_event("ws_disconnect")) == (200, None)
    assert connection_rows(dynamodb) == [("tst", "OtherConn=")]


def lagging_index(monkeypatch: pytest.MonkeyPatch, misses: int) -> list[dict[str, Any]]:
    """Make the connections client's index queries find nothing ``misses`` times, as a global
    secondary index (eventually consistent) does right after a write; the queries made."""
    client = runtime().connections._client
    real_query = client.query
    queries: list[dict[str, Any]] = []

    def query(**request: Any) -> Any:
        if "IndexName" in request:
            queries.append(request)
            if len(queries) <= misses:
                return {"Items": [], "Count": 0, "ScannedCount": 0}
        return real_query(**request)

    monkeypatch.setattr(client, "query", query)
    return queries


def test_disconnect_right_after_connect_finds_the_row_through_a_lagging_index(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a connection whose row the index does not show yet (connect, then disconnect at once)
    call(load_event("ws_connect"))
    queries = lagging_index(monkeypatch, misses=2)
    monkeypatch.setattr(websocket_api.time, "sleep", lambda seconds: None)
    # When $disconnect runs, it asks again (bounded) and removes the row
    assert call(load_event("ws_disconnect")) == (200, None)
    assert connection_rows(dynamodb) == []
    assert len(queries) == 3


def test_disconnect_of_an_unknown_connection_is_harmless(monkeypatch: pytest.MonkeyPatch) -> None:
    queries = lagging_index(monkeypatch, misses=0)
    waits: list[float] = []
    monkeypatch.setattr(websocket_api.time, "sleep", waits.append)
    assert call(load_event("ws_disconnect")) == (200, None)
    # It gave up after a bounded number of tries, waiting about a second in all.
    assert len(queries) == 1 + len(waits)
    assert 0.5 <= sum(waits) <= 2.0


def test_newlog_frame_stores_like_post_and_answers_nothing(dynamodb: Any) -> None:
    # The frontend renders every frame it gets as a log line: the sender sees its message
    # through the broadcast, like every subscriber, and nothing else.
    response = websocket_api.handler(load_event("ws_newlog"), FakeLambdaContext())
    assert response == {"statusCode": 200}
    [item] = dynamodb.scan(TableName="messages-test")["Items"]
    assert item["message"]["S"] == "Dome opening"
    assert item["log_level"]["S"] == "warning"
    assert "action" not in item


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "newlog", "log_message": "x"}, "site"),
        ({"action": "newlog", "site": "tst"}, "log_message"),
        ({"action": "newlog", "site": "tst", "log_message": "x", "timestamp": "NaN"}, "timestamp"),
        ('{"action": "newlog", "site": ', "body"),
    ],
)
def test_bad_newlog_frame_gets_an_error_frame_and_writes_nothing(
    dynamodb: Any, body: dict[str, Any] | str, field: str
) -> None:
    status, answer = call(with_body("ws_newlog", body))
    assert status == 400
    assert answer["field"] == field
    assert answer["status"] == 400
    assert dynamodb.scan(TableName="messages-test")["Items"] == []


@pytest.mark.parametrize("body", ['{"action": "subscribe"}', '{"hello": 1}', "plain text", "[]"])
def test_other_frames_get_an_error_listing_the_supported_actions(body: str) -> None:
    event = with_body("ws_newlog", body)
    event["requestContext"]["routeKey"] = "$default"
    status, answer = call(event)
    assert status == 400
    assert answer["supported_actions"] == list(WEBSOCKET_ACTIONS) == ["newlog"]
    assert "newlog" in answer["error"]


def assert_renders_as_a_log_line(frame: dict[str, Any], field: str) -> None:
    """What the frontend shows for every frame: a message naming the field, an error level and
    a timestamp string of whole seconds (moment parses it), next to the error details."""
    assert isinstance(frame["message"], str)
    assert field in frame["message"]
    assert frame["message"] == frame["error"]
    assert frame["log_level"] == "error"
    assert re.fullmatch(r"[0-9]+", frame["timestamp"])
    assert abs(int(frame["timestamp"]) - time.time()) < 5


@pytest.mark.parametrize(
    ("route_key", "body", "field", "status"),
    [
        ("newlog", '{"action": "newlog", "site": "tst"}', "log_message", 400),
        ("newlog", '{"action": "newlog", "site": ', "body", 400),
        ("$default", '{"action": "dance"}', "action", 400),
        ("$default", '{"action": "newlog", "site": "tst", "log_message": "x"}', "action", 403),
    ],
)
def test_error_frames_render_in_the_frontend(
    route_key: str, body: str, field: str, status: int
) -> None:
    event = with_body("ws_newlog", body)
    event["requestContext"]["routeKey"] = route_key
    answer_status, frame = call(event)
    assert (answer_status, frame["status"], frame["field"]) == (status, status, field)
    assert_renders_as_a_log_line(frame, field)


def test_internal_error_frame_renders_in_the_frontend(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(websocket_api.ROUTES, "newlog", broken)
    status, frame = call(load_event("ws_newlog"))
    assert (status, frame["status"], frame["error"]) == (500, 500, "internal error")
    assert "boom" not in json.dumps(frame)
    assert frame["log_level"] == "error"
    assert re.fullmatch(r"[0-9]+", frame["timestamp"])


def test_newlog_frame_on_a_stage_without_the_newlog_route_is_refused(dynamodb: Any) -> None:
    # Given post_auth=iam, API Gateway has no newlog route and routes the frame to $default
    event = load_event("ws_newlog")
    event["requestContext"]["routeKey"] = "$default"
    status, answer = call(event)
    assert status == 403
    assert "POST /newlog" in answer["error"]
    assert dynamodb.scan(TableName="messages-test")["Items"] == []
