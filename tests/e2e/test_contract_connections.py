"""Connections: $disconnect, stale ids cleaned up on 410, and the management API itself."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from botocore.credentials import Credentials

from tests.e2e.targets import Target
from tests.e2e.wire import (
    TIMEOUT,
    add_stale_connection,
    apost,
    await_until,
    connection_ids,
    http,
    manage,
    online_users,
    receive_json,
    subscribe,
    wait_until,
)


def test_disconnect_removes_the_connection(target: Target, site: str) -> None:
    async def scenario() -> None:
        async with subscribe(target, site):
            async with subscribe(target, site):
                assert await asyncio.to_thread(online_users, target, site) == 2
            await await_until(lambda: asyncio.to_thread(lambda: online_users(target, site) == 1))
        await await_until(lambda: asyncio.to_thread(lambda: online_users(target, site) == 0))

    asyncio.run(scenario())
    assert connection_ids(target, site) == []


def test_stale_connection_is_forgotten_on_410(target: Target, site: str) -> None:
    # Given a connection row whose client is long gone (its $disconnect never ran)
    stale_id = "StaleConnId0000="
    add_stale_connection(target, site, stale_id)

    async def scenario() -> None:
        async with subscribe(target, site) as live:
            assert await asyncio.to_thread(online_users, target, site) == 2
            # When a message is broadcast to the site
            await apost(target, site=site, log_message="anyone there?")
            # Then the live client gets it, and the management API's 410 removes the stale row
            assert (await receive_json(live))["message"] == "anyone there?"
            await await_until(
                lambda: asyncio.to_thread(lambda: stale_id not in connection_ids(target, site))
            )
            assert await asyncio.to_thread(online_users, target, site) == 1

    asyncio.run(scenario())


def test_management_api_posts_gets_and_deletes_a_connection(target: Target, site: str) -> None:
    async def scenario() -> None:
        async with subscribe(target, site) as connection:
            [connection_id] = await asyncio.to_thread(connection_ids, target, site)

            posted = await asyncio.to_thread(
                manage, target, "POST", connection_id, b'{"hello": "direct"}'
            )
            assert posted.status == 200
            assert await receive_json(connection) == {"hello": "direct"}

            info = await asyncio.to_thread(manage, target, "GET", connection_id)
            assert info.status == 200
            assert {"ConnectedAt", "LastActiveAt"} <= set(info.json)

            deleted = await asyncio.to_thread(manage, target, "DELETE", connection_id)
            assert deleted.status == 204
            await asyncio.wait_for(connection.wait_closed(), TIMEOUT)

        # The deletion closed the socket, so $disconnect ran and the id is gone.
        await await_until(lambda: asyncio.to_thread(lambda: connection_ids(target, site) == []))
        gone = await asyncio.to_thread(manage, target, "POST", connection_id, b"too late")
        # SDKs key on the status (GoneException); API Gateway documents no body for it.
        assert gone.status == 410

    asyncio.run(scenario())


def test_connection_ids_have_api_gateways_shape(target: Target, site: str) -> None:
    target.require("connection_id_shape")

    async def scenario() -> list[str]:
        async with subscribe(target, site):
            return await asyncio.to_thread(connection_ids, target, site)

    [connection_id] = asyncio.run(scenario())
    # API Gateway's ids are 12 random bytes in base64, such as "L0SM9cOFvHcCIhw=".
    assert len(connection_id) == 16
    assert connection_id.endswith("=")


def test_connection_info_has_api_gateways_fields(target: Target, site: str) -> None:
    target.require("connection_info_identity")

    async def scenario() -> Any:
        async with subscribe(target, site):
            [connection_id] = await asyncio.to_thread(connection_ids, target, site)
            return (await asyncio.to_thread(manage, target, "GET", connection_id)).json

    info = asyncio.run(scenario())
    assert set(info) == {"ConnectedAt", "Identity", "LastActiveAt"}
    assert info["Identity"]["SourceIp"] == "127.0.0.1"


def test_unknown_connection_id_is_gone(target: Target) -> None:
    for method in ("POST", "GET", "DELETE"):
        answer = manage(target, method, "NoSuchConnId00=", b"x" if method == "POST" else None)
        assert answer.status == 410, method


def test_management_api_refuses_posts_over_128_kb(target: Target, site: str) -> None:
    target.require("management_post_limit")

    async def scenario() -> dict[str, Any]:
        async with subscribe(target, site):
            [connection_id] = await asyncio.to_thread(connection_ids, target, site)
            answer = await asyncio.to_thread(
                manage, target, "POST", connection_id, b"x" * (128 * 1024 + 1)
            )
            return {"status": answer.status, "body": answer.json}

    outcome = asyncio.run(scenario())
    assert outcome["status"] == 413


def test_frames_reach_every_subscriber_of_a_site(target: Target, site: str) -> None:
    async def scenario() -> None:
        async with (
            subscribe(target, site) as a,
            subscribe(target, site) as b,
            subscribe(target, site) as c,
        ):
            await apost(target, site=site, log_message="all of you")
            frames = [await receive_json(x) for x in (a, b, c)]
        assert {json.dumps(f, sort_keys=True) for f in frames} == {
            json.dumps(frames[0], sort_keys=True)
        }

    asyncio.run(scenario())
    wait_until(lambda: online_users(target, site) == 0)


def test_management_calls_need_a_signature(target: Target, site: str) -> None:
    # Given a connected viewer
    async def scenario() -> None:
        async with subscribe(target, site) as viewer:
            [connection_id] = await asyncio.to_thread(connection_ids, target, site)
            url = target.management_url(connection_id)
            # When the management API is called unsigned, it answers 403 as API Gateway does
            for method, body in (("POST", b'{"message": "not signed"}'), ("GET", None)):
                unsigned = await asyncio.to_thread(http, target, method, url, body, {})
                assert unsigned.status == 403, method
                assert unsigned.json["message"] == "Missing Authentication Token"
            # and the viewer received nothing, and is still connected
            signed = await asyncio.to_thread(manage, target, "POST", connection_id, b'{"n": 1}')
            assert signed.status == 200
            assert await receive_json(viewer) == {"n": 1}

    asyncio.run(scenario())


def test_management_calls_with_a_wrong_signature_are_refused(target: Target, site: str) -> None:
    target.require("root_signature_unchecked")

    async def scenario() -> None:
        async with subscribe(target, site) as viewer:
            [connection_id] = await asyncio.to_thread(connection_ids, target, site)
            url = target.management_url(connection_id)
            body = b'{"message": "forged"}'
            # When it is signed with a wrong secret, or signed for another body, or a call
            # signed for a GET is replayed as a DELETE, it answers 403
            forged = target.with_credentials(Credentials(target.credentials.access_key, "x"))
            for headers in (
                forged.signed_headers("POST", url, body),
                target.signed_headers("POST", url, b"{}"),
            ):
                refused = await asyncio.to_thread(http, target, "POST", url, body, headers)
                assert refused.status == 403
                assert "signature" in refused.json["message"]
            get_headers = target.signed_headers("GET", url, None)
            replayed = await asyncio.to_thread(http, target, "DELETE", url, None, get_headers)
            assert replayed.status == 403
            # and the viewer received nothing, and is still connected
            signed = await asyncio.to_thread(manage, target, "POST", connection_id, b'{"n": 2}')
            assert signed.status == 200
            assert await receive_json(viewer) == {"n": 2}

    asyncio.run(scenario())
