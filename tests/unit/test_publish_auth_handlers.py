"""Both ways of posting (POST /newlog and the WebSocket newlog frame) in each publish mode."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.events import with_body
from tests.fakes.lambda_context import FakeLambdaContext
from tests.unit.conftest import PUBLISH_KEYS_TABLE
from userstatus import http_api, websocket_api
from userstatus.config import ConfigError
from userstatus.publish_keys import KeyStore
from userstatus.runtime import runtime

MESSAGE = {"site": "tst", "log_message": "Dome opening", "log_level": "warning"}


@pytest.fixture
def mode(monkeypatch: pytest.MonkeyPatch, dynamodb: Any, request: pytest.FixtureRequest) -> str:
    monkeypatch.setenv("PUBLISH_AUTH", request.param)
    monkeypatch.setenv("STAGE", "dev")
    runtime.cache_clear()
    return str(request.param)


@pytest.fixture
def keys(dynamodb: Any) -> dict[str, str]:
    store = KeyStore(dynamodb, PUBLISH_KEYS_TABLE)
    revoked = store.create("tst", now=1)
    store.revoke("tst", revoked.info.key_id, now=2)
    return {
        "valid": store.create("tst", now=1).key,
        "other site": store.create("other", now=1).key,
        "revoked": revoked.key,
    }


def post_http(key: str | None, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    event = with_body("http_post_newlog", MESSAGE)
    if key is not None:
        event["headers"]["authorization"] = f"Bearer {key}"
    event["headers"].update(headers or {})
    response = http_api.handler(event, FakeLambdaContext())
    return response["statusCode"], response["headers"], json.loads(response["body"])


def post_frame(key: object) -> tuple[int, Any]:
    fields: dict[str, Any] = {"action": "newlog", **MESSAGE}
    if key is not None:
        fields["key"] = key
    response = websocket_api.handler(with_body("ws_newlog", fields), FakeLambdaContext())
    body = response.get("body")
    return response["statusCode"], json.loads(body) if body else None


def stored(dynamodb: Any) -> list[dict[str, Any]]:
    return dynamodb.scan(TableName="messages-test")["Items"]


@pytest.mark.parametrize("mode", ["keys"], indirect=True)
@pytest.mark.parametrize(
    ("which", "status", "error"),
    [
        (None, 401, "Authorization is required: 'Bearer <publish key>' of site 'tst'"),
        ("other site", 403, "Authorization is not a key of site 'tst'"),
        ("revoked", 403, "Authorization was revoked"),
        ("junk", 403, "Authorization is not a publish key (usk_...)"),
    ],
)
def test_keys_mode_refuses_a_post_without_a_valid_key_and_stores_nothing(
    mode: str, keys: dict[str, str], dynamodb: Any, which: str | None, status: int, error: str
) -> None:
    given = None if which is None else keys.get(which, which)
    answered, headers, body = post_http(given)
    assert (answered, body) == (status, {"error": error, "field": "Authorization"})
    if status == 401:
        assert headers["WWW-Authenticate"] == 'Bearer realm="userstatus"'
    assert stored(dynamodb) == []


@pytest.mark.parametrize("mode", ["keys"], indirect=True)
def test_keys_mode_stores_a_post_with_its_site_key_and_never_the_key(
    mode: str, keys: dict[str, str], dynamodb: Any
) -> None:
    status, _, body = post_http(keys["valid"])
    assert status == 200, body
    assert body["message"] == "Dome opening"
    (item,) = stored(dynamodb)
    assert keys["valid"] not in json.dumps(item)


@pytest.mark.parametrize("mode", ["keys"], indirect=True)
@pytest.mark.parametrize(
    ("which", "status", "error"),
    [
        (None, 401, "key is required: a publish key of site 'tst'"),
        ("other site", 403, "key is not a key of site 'tst'"),
        ("revoked", 403, "key was revoked"),
        (42, 403, "key is not a publish key (usk_...)"),
    ],
)
def test_keys_mode_refuses_a_frame_without_a_valid_key(
    mode: str, keys: dict[str, str], dynamodb: Any, which: object, status: int, error: str
) -> None:
    given = keys.get(which, which) if isinstance(which, str) else which
    answered, frame = post_frame(given)
    assert answered == status
    assert (frame["error"], frame["field"], frame["status"]) == (error, "key", status)
    assert frame["log_level"] == "error"  # rendered by the frontend as an error line
    assert stored(dynamodb) == []


@pytest.mark.parametrize("mode", ["keys"], indirect=True)
def test_keys_mode_stores_a_frame_with_its_site_key_and_never_the_key(
    mode: str, keys: dict[str, str], dynamodb: Any
) -> None:
    assert post_frame(keys["valid"]) == (200, None)
    (item,) = stored(dynamodb)
    assert "key" not in item
    assert keys["valid"] not in json.dumps(item)


@pytest.mark.parametrize("mode", ["audit"], indirect=True)
def test_audit_mode_stores_every_post_and_counts_the_unkeyed_ones(
    mode: str, keys: dict[str, str], dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert post_http(None)[0] == 200
    assert post_http(keys["valid"])[0] == 200
    assert post_http(None, {"authorization": "Basic eDp5"})[0] == 200
    assert post_frame(keys["revoked"]) == (200, None)
    assert len(stored(dynamodb)) == 4
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(m["Site"], m["Stage"], m["UnkeyedPosts"]) for m in metrics] == [("tst", "dev", 1)] * 3


@pytest.mark.parametrize("mode", ["open"], indirect=True)
def test_open_mode_stores_posts_without_keys_and_reads_no_key(
    mode: str, dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert post_http(None)[0] == 200
    assert post_http("junk")[0] == 200
    assert post_frame("junk") == (200, None)
    assert len(stored(dynamodb)) == 3
    assert capsys.readouterr().out == ""


def test_a_mode_needing_keys_without_the_keys_table_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, dynamodb: Any
) -> None:
    monkeypatch.setenv("PUBLISH_AUTH", "keys")
    monkeypatch.delenv("PUBLISH_KEYS_TABLE")
    runtime.cache_clear()
    with pytest.raises(ConfigError, match="PUBLISH_KEYS_TABLE is required with PUBLISH_AUTH=keys"):
        runtime()


def test_an_unknown_mode_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, dynamodb: Any
) -> None:
    monkeypatch.setenv("PUBLISH_AUTH", "sometimes")
    runtime.cache_clear()
    with pytest.raises(ConfigError, match="PUBLISH_AUTH must be one of open, audit, keys"):
        runtime()
