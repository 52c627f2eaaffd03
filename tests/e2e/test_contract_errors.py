"""Bad input, unknown routes and protocol limits, answered the way API Gateway would."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.targets import Target
from tests.e2e.wire import (
    TIMEOUT,
    expect_silence,
    http,
    open_websocket,
    receive_json,
    subscribe,
)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"log_message": "no site"}, "site"),
        ({"site": "bad site!", "log_message": "x"}, "site"),
        ({"site": "tst"}, "log_message"),
        ({"site": "tst", "log_message": "x", "log_level": "loud"}, "log_level"),
        ({"site": "tst", "log_message": "x", "timestamp": 1.7e12}, "timestamp"),
    ],
)
def test_bad_message_over_http_is_answered_400(
    target: Target, body: dict[str, object], field: str
) -> None:
    answer = http(
        target,
        "POST",
        target.http_url + "/newlog",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    assert answer.status == 400
    assert answer.json["field"] == field
    assert answer.json["error"]
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_body_that_is_not_json_is_answered_400(target: Target) -> None:
    answer = http(
        target, "POST", target.http_url + "/newlog", b"site=tst", {"Content-Type": "text/plain"}
    )
    assert answer.status == 400
    assert answer.json["field"] == "body"


def test_binary_body_reaches_the_handler_base64_encoded(target: Target, site: str) -> None:
    # Given a content type API Gateway does not treat as text, the event carries the body
    # base64-encoded with isBase64Encoded set; the handler decodes it.
    body = json.dumps({"site": site, "log_message": "bytes"}).encode()
    answer = http(
        target,
        "POST",
        target.http_url + "/newlog",
        body,
        {"Content-Type": "application/octet-stream"},
    )
    assert answer.status == 200, answer.text
    assert answer.json["message"] == "bytes"


def test_unknown_route_is_answered_404_like_api_gateway(target: Target) -> None:
    # An HTTP API without a $default route answers unknown routes itself, before any function.
    for method, path in [("GET", "/nowhere"), ("DELETE", "/newlog"), ("GET", "/newlog")]:
        answer = http(target, method, target.http_url + path)
        assert answer.status == 404
        assert answer.json == {"message": "Not Found"}


def test_preflight_is_answered_by_the_handler(target: Target) -> None:
    answer = http(
        target,
        "OPTIONS",
        target.http_url + "/newlog",
        headers={"Origin": "http://example.org", "Access-Control-Request-Method": "POST"},
    )
    assert answer.status == 204
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]


def test_online_users_without_site_is_answered_400(target: Target) -> None:
    answer = http(target, "GET", target.http_url + "/onlineusers")
    assert answer.status == 400
    assert answer.json["field"] == "site"


def test_bad_message_over_websocket_is_answered_with_an_error_frame(
    target: Target, site: str
) -> None:
    async def scenario() -> None:
        async with subscribe(target, site) as connection:
            await connection.send(json.dumps({"action": "newlog", "site": site}))
            error = await receive_json(connection)
            assert error["status"] == 400
            assert error["field"] == "log_message"
            assert error["error"]
            # It renders in the frontend as a log line: message, level, timestamp string.
            assert "log_message" in error["message"]
            assert error["log_level"] == "error"
            assert error["timestamp"].isdigit()
            # Nothing was stored, so nothing is broadcast.
            await expect_silence(connection, 0.3)

    asyncio.run(scenario())


def test_unknown_action_is_answered_by_the_default_route(target: Target, site: str) -> None:
    async def scenario() -> None:
        async with subscribe(target, site) as connection:
            await connection.send(json.dumps({"action": "dance"}))
            error = await receive_json(connection)
            await connection.send("not json at all")
            second = await receive_json(connection)
        assert error["status"] == 400
        assert error["supported_actions"] == ["newlog"]
        assert "dance" in error["error"]
        assert second["field"] == "action"

    asyncio.run(scenario())


INVALID_SITE_QUERIES = ["", "?site=", "?site=bad%20site"]


@pytest.mark.parametrize("query", INVALID_SITE_QUERIES)
def test_connect_without_a_valid_site_is_refused(target: Target, query: str) -> None:
    async def scenario() -> int:
        with pytest.raises(InvalidStatus) as rejected:
            async with open_websocket(target, query):
                pass
        return rejected.value.response.status_code

    assert 400 <= asyncio.run(scenario()) < 500


@pytest.mark.parametrize("query", INVALID_SITE_QUERIES)
def test_connect_refusal_is_the_functions_400_naming_the_field(target: Target, query: str) -> None:
    target.require("connect_rejection_status")

    async def scenario() -> None:
        with pytest.raises(InvalidStatus) as rejected:
            async with open_websocket(target, query):
                pass
        assert rejected.value.response.status_code == 400
        assert json.loads(rejected.value.response.body or b"{}")["field"] == "site"

    asyncio.run(scenario())


def test_a_message_over_128_kb_in_fragments_closes_the_connection_with_1009(
    target: Target, site: str
) -> None:
    # API Gateway's message limit is 128 KB, however many frames within 32 KB carry it.
    target.require("websocket_frame_limits")
    fragments = ["x" * (32 * 1024)] * 4 + ["x"]

    async def scenario() -> None:
        async with subscribe(target, site) as connection:
            await connection.send(fragments)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(connection.recv(), TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009

    asyncio.run(scenario())


def test_frame_over_32_kb_closes_the_connection_with_1009(target: Target, site: str) -> None:
    # API Gateway's frame limit is 32 KB (32,768 bytes): one byte more in one frame closes.
    target.require("websocket_frame_limits")

    async def scenario() -> None:
        async with subscribe(target, site) as connection:
            largest = json.dumps({"action": "nope", "pad": "x" * (32 * 1024 - 29)})
            assert len(largest) == 32 * 1024
            await connection.send(largest)
            assert (await receive_json(connection))["field"] == "action"
            await connection.send("x" * (32 * 1024 + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(connection.recv(), TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009

    asyncio.run(scenario())


def test_a_message_over_32_kb_sent_in_fragments_reaches_the_function(
    target: Target, site: str
) -> None:
    # A 100 KB message in 25 KB frames is within both of API Gateway's limits.
    frame = json.dumps({"action": "nope", "pad": "x" * 100_000})
    fragments = [frame[start : start + 25_000] for start in range(0, len(frame), 25_000)]
    assert len(fragments) == 5

    async def scenario() -> None:
        async with subscribe(target, site) as connection:
            await connection.send(fragments)
            answer = await receive_json(connection)
        assert answer["field"] == "action"
        assert "unsupported action 'nope'" in answer["message"]

    asyncio.run(scenario())


def test_plain_http_on_the_websocket_port_is_answered_426(target: Target) -> None:
    target.require("plain_http_on_websocket_port")
    answer = http(target, "GET", target.websocket_url("?site=tst").replace("ws://", "http://"))
    assert answer.status == 426


def test_repeated_query_keys_reach_the_handler_comma_joined(target: Target) -> None:
    # API Gateway joins repeated keys with commas: "a,b" is not a valid site code.
    answer = http(target, "GET", target.http_url + "/onlineusers?site=a&site=b")
    assert answer.status == 400
    assert answer.json["field"] == "site"
    assert http(target, "GET", target.http_url + "/onlineusers?site=a").status == 200
