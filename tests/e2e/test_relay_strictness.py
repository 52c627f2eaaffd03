"""The relay as strict as API Gateway, on real loopback ports.

The first test runs the relay's WebSocket server in-process with a handler the test controls,
to hold a ``$connect`` open while the management API is called; the others run the relay
process with its API Gateway timeouts shortened.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.targets import Target
from tests.e2e.wire import TIMEOUT, await_until, online_users, receive_json, subscribe
from userstatus_local.http_server import HttpRelay
from userstatus_local.invoke import MAX_RESPONSE_BYTES, Invoker
from userstatus_local.process import REPOSITORY_ROOT, RelayProcess
from userstatus_local.websocket_server import WebSocketRelay
from userstatus_stack.stages import STAGES


class HeldConnect:
    """A WebSocket handler whose ``$connect`` waits until the test lets it answer 200."""

    def __init__(self) -> None:
        self.connection_ids: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, event: Mapping[str, Any], context: object) -> dict[str, Any]:
        request_context = event["requestContext"]
        if request_context["routeKey"] == "$connect":
            self.connection_ids.append(request_context["connectionId"])
            self.started.set()
            assert self.release.wait(TIMEOUT)
        return {"statusCode": 200}


@asynccontextmanager
async def websocket_server(handler: HeldConnect) -> AsyncIterator[str]:
    """The relay's WebSocket server on a free loopback port; its base URL."""
    with ThreadPoolExecutor(4) as executor:
        relay = WebSocketRelay(handler, Invoker(executor))
        try:
            async with served(relay.application()) as address:
                yield address
        finally:
            handler.release.set()


def test_a_post_before_connect_has_answered_is_gone_and_one_after_is_delivered() -> None:
    handler = HeldConnect()

    async def scenario() -> None:
        async with websocket_server(handler) as address, aiohttp.ClientSession() as session:
            # Given a client whose $connect has written its row but not answered yet
            opening = asyncio.create_task(
                connect(f"ws://{address}/?site=tst", open_timeout=TIMEOUT).__aenter__()
            )
            assert await asyncio.to_thread(handler.started.wait, TIMEOUT)
            [connection_id] = handler.connection_ids
            url = f"http://{address}/local/@connections/{connection_id}"
            # When the management API is called for it, it answers 410, as API Gateway does
            async with session.post(url, data=b'{"n": 0}') as early:
                assert early.status == 410
                assert await early.json() == {"message": "Gone"}
            async with session.get(url) as early_get:
                assert early_get.status == 410
            # Then once $connect has answered, the connection is postable and gets the post
            handler.release.set()
            client = await asyncio.wait_for(opening, TIMEOUT)
            try:
                async with session.post(url, data=b'{"n": 1}') as late:
                    assert late.status == 200
                assert json.loads(await asyncio.wait_for(client.recv(), TIMEOUT)) == {"n": 1}
            finally:
                await client.close()

    asyncio.run(scenario())


IDLE_SECONDS = 1.0
MAX_CONNECTION_SECONDS = 3.0


@pytest.fixture(scope="module")
def short_lived_relay() -> Iterator[RelayProcess]:
    """A relay with API Gateway's idle timeout and maximum duration shortened."""
    with RelayProcess.start(
        "--idle-timeout", str(IDLE_SECONDS), "--max-connection-seconds", str(MAX_CONNECTION_SECONDS)
    ) as started:
        yield started


def test_an_idle_connection_is_closed_1001_and_disconnected(
    short_lived_relay: RelayProcess, site: str
) -> None:
    target = Target.relay(short_lived_relay)

    async def scenario() -> None:
        async with subscribe(target, site) as viewer:
            assert await asyncio.to_thread(online_users, target, site) == 1
            # Given no data frame either way, the relay closes it after the idle timeout
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(viewer.recv(), IDLE_SECONDS + TIMEOUT)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
        # and runs $disconnect: the connection is forgotten
        await await_until(lambda: asyncio.to_thread(lambda: online_users(target, site) == 0))

    asyncio.run(scenario())


def test_an_active_connection_outlives_the_idle_timeout_but_not_the_maximum_duration(
    short_lived_relay: RelayProcess, site: str
) -> None:
    target = Target.relay(short_lived_relay)

    async def scenario() -> None:
        async with subscribe(target, site) as viewer:
            opened = time.monotonic()
            # Given a client sending a frame (and getting an answer) more often than the idle
            # timeout
            with pytest.raises(ConnectionClosed) as closed:
                await keep_busy(viewer)
            lived = time.monotonic() - opened
            # Then it stays open past the idle timeout, and is closed 1001 at the maximum
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
            assert lived >= MAX_CONNECTION_SECONDS - 0.1
        await await_until(lambda: asyncio.to_thread(lambda: online_users(target, site) == 0))

    asyncio.run(scenario())


async def keep_busy(viewer: ClientConnection) -> None:
    """Send a frame and read its answer every quarter of the idle timeout, until closed."""
    while True:
        await viewer.send(json.dumps({"action": "ping"}))
        assert (await receive_json(viewer))["field"] == "action"
        await asyncio.sleep(IDLE_SECONDS / 4)


def answering(body: str) -> Any:
    """An HTTP handler that answers 200 with ``body``, whatever it is asked."""

    def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
        return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": body}

    return handler


def test_an_answer_over_lambdas_6_mb_is_refused_as_lambda_refuses_it() -> None:
    # The serialized response is what counts: the status, the headers and the body as a JSON
    # string (here 2 bytes per "é"), 6,291,456 bytes at most.
    envelope = len(json.dumps(answering("")({}, None), ensure_ascii=False).encode())
    fits = "é" * ((MAX_RESPONSE_BYTES - envelope) // 2)
    too_big = fits + "é"

    async def scenario() -> None:
        with ThreadPoolExecutor(2) as executor:
            for body, status in ((fits, 200), (too_big, 500)):
                relay = HttpRelay(answering(body), Invoker(executor), websocket_port=0)
                async with (
                    served(relay.application()) as address,
                    aiohttp.ClientSession() as session,
                    session.get(f"http://{address}/recent-logs?site=tst") as answer,
                ):
                    assert answer.status == status
                    if status == 500:
                        assert await answer.json() == {"message": "Internal Server Error"}
                    else:
                        assert await answer.text() == body

    asyncio.run(scenario())


@asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """``app`` on a free loopback port; its address."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        sockets = site._server.sockets if site._server else []
        yield f"127.0.0.1:{sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()


def test_a_handler_still_running_at_its_timeout_is_a_failed_invocation() -> None:
    # Given a function with a 0.5 s timeout whose handler takes 2 s
    seen_remaining: list[int] = []

    def slow(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        seen_remaining.append(context.get_remaining_time_in_millis())
        time.sleep(2)
        return {"statusCode": 200, "body": "too late"}

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as executor:
            invoker = Invoker(executor, timeout_seconds=0.5, memory_mb=128)
            relay = HttpRelay(slow, invoker, websocket_port=0)
            async with (
                served(relay.application()) as address,
                aiohttp.ClientSession() as session,
                session.get(f"http://{address}/recent-logs?site=tst") as answer,
            ):
                # Then the caller gets API Gateway's 500, not the late answer
                assert answer.status == 500
                assert await answer.json() == {"message": "Internal Server Error"}

    asyncio.run(scenario())
    # and the handler was told its real time
    [remaining] = seen_remaining
    assert 0 < remaining <= 500


def test_the_relay_runs_the_functions_with_the_stages_settings() -> None:
    # Given the relay started for prod
    with RelayProcess.start("--stage", "prod") as relay:
        [record] = [r for r in relay.log_records() if r.get("message") == "functions as deployed"]
    # Then its functions run with prod's settings, read from the stack's own stage config
    prod = STAGES["prod"]
    assert record["stage"] == "prod"
    assert (record["api_timeout_seconds"], record["api_memory_mb"]) == (
        prod.api_timeout_seconds,
        prod.api_memory_mb,
    )
    assert (record["broadcast_timeout_seconds"], record["broadcast_memory_mb"]) == (
        prod.broadcast_timeout_seconds,
        prod.broadcast_memory_mb,
    )
    assert record["broadcast_batch_size"] == prod.broadcast_batch_size


def test_an_unknown_stage_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "userstatus_local", "--stage", "qa", "--http-port", "0"],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown stage 'qa': use --stage <dev|prod>" in result.stderr


def test_time_waiting_for_a_free_thread_does_not_count_against_the_timeout() -> None:
    # Given one thread and two invocations of 0.3 s each, with a 0.5 s timeout
    def quick(event: Mapping[str, Any], context: Any) -> str:
        time.sleep(0.3)
        return "done"

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(1) as executor:
            invoker = Invoker(executor, timeout_seconds=0.5)
            return list(
                await asyncio.gather(
                    invoker.invoke(quick, {}, "first"), invoker.invoke(quick, {}, "second")
                )
            )

    # Then the second, queued 0.3 s behind the first, still answers (Lambda would have run it
    # on another instance)
    assert asyncio.run(scenario()) == ["done", "done"]
