"""Connections: $disconnect, stale ids cleaned up on 410, and the management API itself."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tests.e2e.wire import (
    TIMEOUT,
    apost,
    await_until,
    connection_ids,
    dynamodb,
    http,
    management_url,
    online_users,
    receive_json,
    subscribe,
    wait_until,
)
from userstatus_local.process import RelayProcess


def test_disconnect_removes_the_connection(relay: RelayProcess, site: str) -> None:
    async def scenario() -> None:
        async with subscribe(relay, site):
            async with subscribe(relay, site):
                assert await asyncio.to_thread(online_users, relay, site) == 2
            await await_until(lambda: asyncio.to_thread(lambda: online_users(relay, site) == 1))
        await await_until(lambda: asyncio.to_thread(lambda: online_users(relay, site) == 0))

    asyncio.run(scenario())
    assert connection_ids(relay, site) == []


def test_stale_connection_is_forgotten_on_410(relay: RelayProcess, site: str) -> None:
    # Given a connection row whose client is long gone (its $disconnect never ran)
    stale_id = "StaleConnId0000="
    now = int(time.time())
    dynamodb(relay).put_item(
        TableName=relay.connections_table,
        Item={
            "site": {"S": site},
            "connection_id": {"S": stale_id},
            "connected_at": {"N": str(now)},
            "expires_at": {"N": str(now + 3600)},
        },
    )

    async def scenario() -> None:
        async with subscribe(relay, site) as live:
            assert await asyncio.to_thread(online_users, relay, site) == 2
            # When a message is broadcast to the site
            await apost(relay, site=site, log_message="anyone there?")
            # Then the live client gets it, and the management API's 410 removes the stale row
            assert (await receive_json(live))["message"] == "anyone there?"
            await await_until(
                lambda: asyncio.to_thread(lambda: stale_id not in connection_ids(relay, site))
            )
            assert await asyncio.to_thread(online_users, relay, site) == 1

    asyncio.run(scenario())


def test_management_api_posts_gets_and_deletes_a_connection(relay: RelayProcess, site: str) -> None:
    async def scenario() -> None:
        async with subscribe(relay, site) as connection:
            [connection_id] = await asyncio.to_thread(connection_ids, relay, site)
            assert connection_id.endswith("=")

            posted = await asyncio.to_thread(
                http, "POST", management_url(relay, connection_id), b'{"hello": "direct"}'
            )
            assert posted.status == 200
            assert await receive_json(connection) == {"hello": "direct"}

            info = await asyncio.to_thread(http, "GET", management_url(relay, connection_id, ""))
            assert info.status == 200
            assert set(info.json) == {"ConnectedAt", "Identity", "LastActiveAt"}
            assert info.json["Identity"]["SourceIp"] == "127.0.0.1"

            deleted = await asyncio.to_thread(http, "DELETE", management_url(relay, connection_id))
            assert deleted.status == 204
            await asyncio.wait_for(connection.wait_closed(), TIMEOUT)

        # The deletion closed the socket, so $disconnect ran and the id is gone.
        await await_until(lambda: asyncio.to_thread(lambda: connection_ids(relay, site) == []))
        gone = await asyncio.to_thread(
            http, "POST", management_url(relay, connection_id), b"too late"
        )
        assert gone.status == 410
        assert gone.json == {"message": "Gone"}

    asyncio.run(scenario())


def test_unknown_connection_id_is_gone(relay: RelayProcess) -> None:
    for method in ("POST", "GET", "DELETE"):
        answer = http(
            method, management_url(relay, "NoSuchConnId00="), b"x" if method == "POST" else None
        )
        assert answer.status == 410, method
        assert answer.json == {"message": "Gone"}


def test_management_api_refuses_posts_over_128_kb(relay: RelayProcess, site: str) -> None:
    async def scenario() -> dict[str, Any]:
        async with subscribe(relay, site):
            [connection_id] = await asyncio.to_thread(connection_ids, relay, site)
            answer = await asyncio.to_thread(
                http, "POST", management_url(relay, connection_id), b"x" * (128 * 1024 + 1)
            )
            return {"status": answer.status, "body": answer.json}

    outcome = asyncio.run(scenario())
    assert outcome["status"] == 413


def test_frames_reach_every_subscriber_of_a_site(relay: RelayProcess, site: str) -> None:
    async def scenario() -> None:
        async with (
            subscribe(relay, site) as a,
            subscribe(relay, site) as b,
            subscribe(relay, site) as c,
        ):
            await apost(relay, site=site, log_message="all of you")
            frames = [await receive_json(x) for x in (a, b, c)]
        assert {json.dumps(f, sort_keys=True) for f in frames} == {
            json.dumps(frames[0], sort_keys=True)
        }

    asyncio.run(scenario())
    wait_until(lambda: online_users(relay, site) == 0)
