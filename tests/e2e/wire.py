"""Real HTTP and WebSocket calls to a running target, with a timeout on every wait."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.targets import Target

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
    target: Target,
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> HttpAnswer:
    """One HTTP request to ``target``; error statuses are answers, not exceptions."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(
            request, timeout=TIMEOUT, context=target.ssl_context
        ) as response:
            return HttpAnswer(
                response.status, dict(response.headers.items()), response.read().decode()
            )
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, dict(error.headers.items()), error.read().decode())


def post_message(
    target: Target, /, *, extra_headers: Mapping[str, str] | None = None, **fields: Any
) -> HttpAnswer:
    """POST /newlog with a JSON body of ``fields`` (and ``extra_headers``, if any)."""
    return http(
        target,
        "POST",
        target.http_url + "/newlog",
        json.dumps(fields).encode(),
        {"Content-Type": "application/json", **(extra_headers or {})},
    )


def recent_logs(target: Target, site: str, after_time: float | None = None) -> Any:
    """GET /recent-logs for a site (default window), as parsed JSON."""
    query = {"site": site}
    if after_time is not None:
        query["after_time"] = str(after_time)
    answer = http(target, "GET", target.http_url + "/recent-logs?" + urllib.parse.urlencode(query))
    assert answer.status == 200, answer.text
    return answer.json


def online_users(target: Target, site: str) -> int:
    """GET /onlineusers: the number of connections of a site."""
    answer = http(target, "GET", f"{target.http_url}/onlineusers?site={site}")
    assert answer.status == 200, answer.text
    return int(answer.json["connections"])


def open_websocket(target: Target, query: str = "") -> connect:
    """A WebSocket connection to ``target`` with ``query`` (use with ``async with``)."""
    return connect(
        target.websocket_url(query),
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        ssl=target.ssl_context,
    )


def subscribe(target: Target, site: str) -> connect:
    """A WebSocket subscription to a site (use with ``async with``)."""
    return open_websocket(target, f"?site={site}")


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


async def apost(target: Target, **fields: Any) -> HttpAnswer:
    """``post_message`` off the event loop."""
    return await asyncio.to_thread(lambda: post_message(target, **fields))


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


def connection_ids(target: Target, site: str) -> list[str]:
    """Connection ids stored for a site, read straight from the target's connections table."""
    answer = target.dynamodb().query(
        TableName=target.connections_table,
        KeyConditionExpression="site = :site",
        ExpressionAttributeValues={":site": {"S": site}},
    )
    return sorted(item["connection_id"]["S"] for item in answer["Items"])


def manage(
    target: Target, method: str, connection_id: str, body: bytes | None = None
) -> HttpAnswer:
    """One SigV4-signed call of the management API on a connection."""
    url = target.management_url(connection_id)
    return http(target, method, url, body, target.signed_headers(method, url, body))


def add_stale_connection(target: Target, site: str, connection_id: str) -> None:
    """A connection row whose client is long gone (its $disconnect never ran)."""
    now = int(time.time())
    target.dynamodb().put_item(
        TableName=target.connections_table,
        Item={
            "site": {"S": site},
            "connection_id": {"S": connection_id},
            "connected_at": {"N": str(now - 3600)},
            "expires_at": {"N": str(now + 3600)},
        },
    )
