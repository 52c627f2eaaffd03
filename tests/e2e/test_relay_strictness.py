"""The relay's WebSocket server as strict as API Gateway, on a real loopback port.

These run the relay's WebSocket server in-process with a handler the test controls, to hold a
``$connect`` open while the management API is called.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from websockets.asyncio.client import connect

from tests.e2e.wire import TIMEOUT
from userstatus_local.invoke import Invoker
from userstatus_local.websocket_server import WebSocketRelay


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
        runner = web.AppRunner(relay.application())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            sockets = site._server.sockets if site._server else []
            yield f"127.0.0.1:{sockets[0].getsockname()[1]}"
        finally:
            handler.release.set()
            await runner.cleanup()


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
