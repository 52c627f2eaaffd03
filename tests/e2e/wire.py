"""Real HTTP and WebSocket calls to a running relay, with a timeout on every wait."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import boto3
from websockets.asyncio.client import ClientConnection, connect

from userstatus_local.process import RelayProcess

TIMEOUT = 10.0


@dataclass
class HttpAnswer:
    """Status, headers and the JSON (or raw text) body of one HTTP answer."""

    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> HttpAnswer:
    """One HTTP request; error statuses are answers, not exceptions."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return HttpAnswer(
                response.status, dict(response.headers.items()), response.read().decode()
            )
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, dict(error.headers.items()), error.read().decode())


def post_message(relay: RelayProcess, **fields: Any) -> HttpAnswer:
    """POST /newlog with a JSON body."""
    return http(
        "POST",
        relay.http_url + "/newlog",
        json.dumps(fields).encode(),
        {"Content-Type": "application/json"},
    )


def recent_logs(relay: RelayProcess, site: str, after_time: float | None = None) -> Any:
    """GET /recent-logs for a site (default window), as parsed JSON."""
    query = {"site": site}
    if after_time is not None:
        query["after_time"] = str(after_time)
    answer = http("GET", relay.http_url + "/recent-logs?" + urllib.parse.urlencode(query))
    assert answer.status == 200, answer.text
    return answer.json


def online_users(relay: RelayProcess, site: str) -> int:
    """GET /onlineusers: the number of connections of a site."""
    answer = http("GET", f"{relay.http_url}/onlineusers?site={site}")
    assert answer.status == 200, answer.text
    return int(answer.json["connections"])


def subscribe(relay: RelayProcess, site: str) -> connect:
    """A WebSocket subscription to a site (use with ``async with``)."""
    return connect(f"{relay.ws_url}/?site={site}", open_timeout=TIMEOUT, close_timeout=TIMEOUT)


async def receive_json(connection: ClientConnection, timeout: float = TIMEOUT) -> Any:
    """The next frame, parsed; fails the test if none comes in time."""
    frame = await asyncio.wait_for(connection.recv(), timeout)
    return json.loads(frame)


async def receive_n(connection: ClientConnection, count: int) -> list[Any]:
    """The next ``count`` frames, parsed."""
    return [await receive_json(connection) for _ in range(count)]


async def expect_silence(connection: ClientConnection, seconds: float) -> None:
    """Fail if a frame arrives within ``seconds``."""
    try:
        frame = await asyncio.wait_for(connection.recv(), seconds)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected frame: {frame!r}")


async def apost(relay: RelayProcess, **fields: Any) -> HttpAnswer:
    """``post_message`` off the event loop."""
    return await asyncio.to_thread(lambda: post_message(relay, **fields))


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


async def await_until(condition: Callable[[], Awaitable[bool]], timeout: float = TIMEOUT) -> None:
    """Async ``wait_until``."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


def dynamodb(relay: RelayProcess) -> Any:
    """A boto3 client of the relay's embedded DynamoDB (dummy credentials)."""
    return boto3.client(
        "dynamodb",
        endpoint_url=relay.dynamodb_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def connection_ids(relay: RelayProcess, site: str) -> list[str]:
    """Connection ids stored for a site, read straight from the embedded DynamoDB."""
    answer = dynamodb(relay).query(
        TableName=relay.connections_table,
        KeyConditionExpression="site = :site",
        ExpressionAttributeValues={":site": {"S": site}},
    )
    return sorted(item["connection_id"]["S"] for item in answer["Items"])


def management_url(relay: RelayProcess, connection_id: str, stage: str = "local") -> str:
    """The management API URL of a connection, under a stage prefix unless ``stage`` is empty."""
    base = relay.ws_url.replace("ws://", "http://")
    prefix = f"/{stage}" if stage else ""
    return f"{base}{prefix}/@connections/{urllib.parse.quote(connection_id, safe='')}"
