"""Abuse of the relay: oversize bodies, a flood of connections, oversize frames, clients that
never read. After each, the relay must still be up and serve a normal post to a subscriber.

These tests share one relay of their own (not the session's), so what they do to it, and the
relay's logs they read, concern no other test.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.raw_websocket import (
    OPCODE_CLOSE,
    OPCODE_TEXT,
    client_frame_header,
    close_code,
    open_raw_websocket,
    read_frame,
)
from tests.e2e.targets import Target
from tests.e2e.wire import TIMEOUT, await_until, http, online_users, receive_json, subscribe
from userstatus_local.process import RelayProcess

MAX_MESSAGE_BYTES = 16 * 1024
FLOOD_CONNECTIONS = 2_000
SLOW_CLIENT_MESSAGES = 80
# Headroom over the flood for the test's own files, sockets and the relay's tables.
FILE_DESCRIPTOR_HEADROOM = 512


@pytest.fixture(scope="module")
def relay() -> Iterator[RelayProcess]:
    """A relay for these tests alone."""
    with RelayProcess.start() as started:
        yield started


def new_site() -> str:
    return "abuse-" + uuid.uuid4().hex[:12]


def post_raw(relay: RelayProcess, body: bytes) -> Any:
    return http(
        Target.relay(relay),
        "POST",
        relay.http_url + "/newlog",
        body,
        {"Content-Type": "application/json"},
    )


def relay_rss_bytes(relay: RelayProcess) -> int:
    """The relay process's resident memory."""
    for line in Path(f"/proc/{relay.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


def assert_relay_serves(relay: RelayProcess) -> None:
    """The relay is up and a normal post reaches a subscriber of its site."""
    assert relay.process.poll() is None, relay.stderr_tail()
    site = new_site()

    async def scenario() -> None:
        async with subscribe(Target.relay(relay), site) as subscriber:
            await wait_online(relay, site, 1)
            answer = await asyncio.to_thread(
                post_raw, relay, json.dumps({"site": site, "log_message": "still here"}).encode()
            )
            assert answer.status == 200, answer.text
            assert (await receive_json(subscriber))["message"] == "still here"

    asyncio.run(scenario())


async def wait_online(relay: RelayProcess, site: str, count: int, timeout: float = TIMEOUT) -> None:
    async def reached() -> bool:
        try:
            return await asyncio.to_thread(online_users, Target.relay(relay), site) == count
        except TimeoutError:
            return False  # the relay's handler threads are busy (a flood of $disconnect)

    await await_until(reached, timeout)


def test_message_over_16_kib_is_refused_and_one_at_the_limit_is_delivered(
    relay: RelayProcess,
) -> None:
    site = new_site()

    async def scenario() -> None:
        async with subscribe(Target.relay(relay), site) as subscriber:
            await wait_online(relay, site, 1)
            for text in ("x" * (MAX_MESSAGE_BYTES + 1), "é" * (MAX_MESSAGE_BYTES // 2 + 1)):
                body = json.dumps({"site": site, "log_message": text}).encode()
                answer = await asyncio.to_thread(post_raw, relay, body)
                assert answer.status == 400
                assert answer.json["field"] == "log_message"
            # Characters JSON escapes six-fold still make a frame under 128 KB.
            at_limit = "\x01" * MAX_MESSAGE_BYTES
            body = json.dumps({"site": site, "log_message": at_limit}).encode()
            answer = await asyncio.to_thread(post_raw, relay, body)
            assert answer.status == 200, answer.text
            assert (await receive_json(subscriber))["message"] == at_limit

    asyncio.run(scenario())
    assert_relay_serves(relay)


def test_bodies_over_1_mb_are_refused_413_and_the_relay_stays_up(relay: RelayProcess) -> None:
    site = new_site()
    big = b'{"site": "' + site.encode() + b'", "log_message": "' + b"x" * 1_500_000 + b'"}'

    async def scenario() -> list[Any]:
        return list(
            await asyncio.gather(*(asyncio.to_thread(post_raw, relay, big) for _ in range(8)))
        )

    for answer in asyncio.run(scenario()):
        assert answer.status == 413
        assert answer.json["field"] == "body"
    # Over API Gateway's own 10 MB limit the relay answers as API Gateway does.
    huge = post_raw(relay, b"x" * (12 * 1024 * 1024))
    assert huge.status == 413
    assert huge.json == {"message": "Request Entity Too Large"}
    assert (
        http(
            Target.relay(relay), "GET", f"{relay.http_url}/recent-logs?site={site}&after_time=0"
        ).json
        == []
    )
    assert_relay_serves(relay)


def test_thousands_of_connections_from_one_client() -> None:
    # A relay of its own: the $disconnect of every flood connection, each an O(rows) index
    # query in moto, keeps it busy for a minute or two after the flood leaves.
    needed = FLOOD_CONNECTIONS + FILE_DESCRIPTOR_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"open-file hard limit {hard} is below the {needed} the flood needs")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))  # the relay inherits it
    flood_site, quiet_site = new_site(), new_site()

    async def post(relay: RelayProcess, site: str, text: str) -> None:
        body = json.dumps({"site": site, "log_message": text}).encode()
        answer = await asyncio.to_thread(post_raw, relay, body)
        assert answer.status == 200, answer.text

    async def scenario(relay: RelayProcess) -> None:
        gate = asyncio.Semaphore(50)

        async def one() -> ClientConnection:
            async with gate:
                return await connect(
                    f"{relay.ws_url}/?site={flood_site}",
                    open_timeout=60,
                    close_timeout=TIMEOUT,
                    compression=None,
                )

        async with subscribe(Target.relay(relay), quiet_site) as bystander:
            # Given 2,000 connections of one client to one site,
            flood = list(await asyncio.gather(*(one() for _ in range(FLOOD_CONNECTIONS))))
            try:
                await wait_online(relay, flood_site, FLOOD_CONNECTIONS)
                # a message of that site reaches every one of them
                await post(relay, flood_site, "to the flood")
                frames = await asyncio.gather(*(receive_json(c, 60) for c in flood))
                assert {frame["message"] for frame in frames} == {"to the flood"}
                # and the bystander on another site gets its own.
                await post(relay, quiet_site, "to the bystander")
                assert (await receive_json(bystander))["message"] == "to the bystander"
            finally:
                await asyncio.gather(*(c.close() for c in flood), return_exceptions=True)
            # While the relay works through 2,000 $disconnect, the bystander still receives
            await post(relay, quiet_site, "during the disconnect storm")
            assert (await receive_json(bystander))["message"] == "during the disconnect storm"

    flooded = RelayProcess.start()
    try:
        asyncio.run(scenario(flooded))
        # and a new subscriber can still connect and receive.
        assert_relay_serves(flooded)
        crashes = [r for r in flooded.log_records() if r.get("message") == "handler raised"]
        assert crashes == []
    finally:
        flooded.stop()


def test_frame_over_the_limit_closes_only_that_connection_with_1009(relay: RelayProcess) -> None:
    site = new_site()

    async def scenario() -> None:
        async with (
            subscribe(Target.relay(relay), site) as bystander,
            subscribe(Target.relay(relay), site) as offender,
        ):
            await wait_online(relay, site, 2)
            await offender.send("x" * (128 * 1024 + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(offender.recv(), TIMEOUT)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009
            await wait_online(relay, site, 1)
            body = json.dumps({"site": site, "log_message": "after the big frame"}).encode()
            assert (await asyncio.to_thread(post_raw, relay, body)).status == 200
            assert (await receive_json(bystander))["message"] == "after the big frame"

    asyncio.run(scenario())
    assert_relay_serves(relay)


def test_frame_announcing_a_huge_length_is_closed_1009_without_waiting_for_it(
    relay: RelayProcess,
) -> None:
    # Given a client that announces a 1 TB text frame and sends none of it,
    site = new_site()
    sock = open_raw_websocket(relay.ws_url, site)
    try:
        sock.sendall(client_frame_header(OPCODE_TEXT, 1 << 40))
        # then the relay closes at once with 1009 (message too big).
        opcode, payload = read_frame(sock)
        assert opcode == OPCODE_CLOSE
        assert close_code(payload) == 1009
    finally:
        sock.close()
    asyncio.run(wait_online(relay, site, 0))
    assert_relay_serves(relay)


def test_client_that_never_reads_is_dropped_without_holding_up_the_others(
    relay: RelayProcess,
) -> None:
    # Given a reading subscriber and a client with a tiny receive window that never reads,
    site = new_site()
    message = "\x01" * MAX_MESSAGE_BYTES  # a 96 KiB frame once JSON-escaped
    rss_before = relay_rss_bytes(relay)
    records_before = len(relay.log_records())
    sleeper = open_raw_websocket(relay.ws_url, site, receive_buffer=4096)

    async def scenario() -> None:
        async with connect(
            f"{relay.ws_url}/?site={site}", open_timeout=TIMEOUT, max_queue=None
        ) as reader:
            await wait_online(relay, site, 2)
            # when many large messages are broadcast to both,
            for sequence in range(SLOW_CLIENT_MESSAGES):
                body = {"site": site, "log_message": message, "timestamp": 1_000_000 + sequence}
                answer = await asyncio.to_thread(post_raw, relay, json.dumps(body).encode())
                assert answer.status == 200, answer.text
            # then the reader gets every one, in order,
            for sequence in range(SLOW_CLIENT_MESSAGES):
                frame = await receive_json(reader)
                assert (frame["message"], frame["timestamp"]) == (
                    message,
                    str(1_000_000 + sequence),
                )
            # and the sleeper is dropped and forgotten.
            await wait_online(relay, site, 1)

    try:
        asyncio.run(scenario())
    finally:
        sleeper.close()
    records = relay.log_records()[records_before:]
    dropped = [r for r in records if r.get("message") == "slow websocket client dropped"]
    assert len(dropped) == 1
    # No post to anyone timed out or failed: the broadcaster never waited on the sleeper.
    # (Batches of this site only: a batch of an earlier test may be logged after it began.)
    batches = [
        r for r in records if r.get("message") == "batch done" and site in r.get("sites", [])
    ]
    assert sum(r["failed"] for r in batches) == 0
    assert not [r for r in records if r.get("message") in ("post failed", "post gave up")]
    assert sum(r["messages"] for r in batches) == SLOW_CLIENT_MESSAGES
    # Memory stayed bounded: far less than the 7.5 MiB of frames queued for the sleeper.
    assert relay_rss_bytes(relay) - rss_before < 64 * 1024 * 1024
    assert_relay_serves(relay)


def test_half_open_connections_do_not_stop_new_subscribers(relay: RelayProcess) -> None:
    # Given many TCP connections to the WebSocket port that never send a handshake,
    host, port = relay.ws_url.removeprefix("ws://").rsplit(":", 1)
    idle = []
    try:
        for _ in range(200):
            sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
            idle.append(sock)
        # a real subscriber still connects and receives.
        assert_relay_serves(relay)
    finally:
        for sock in idle:
            sock.close()


def test_frames_answered_to_a_client_flooding_newlog_frames_stay_in_order(
    relay: RelayProcess,
) -> None:
    # Given a client sending many bad frames without waiting for the answers,
    site = new_site()

    async def scenario() -> None:
        async with subscribe(Target.relay(relay), site) as flooder:
            for sequence in range(200):
                await flooder.send(json.dumps({"action": "dance", "n": sequence}))
            answers = [await receive_json(flooder) for _ in range(200)]
        # then each gets its error answer.
        assert all(a["status"] == 400 and a["field"] == "action" for a in answers)

    asyncio.run(scenario())
    assert_relay_serves(relay)


def test_relay_logged_no_handler_crash(relay: RelayProcess) -> None:
    crashes = [r for r in relay.log_records() if r.get("message") == "handler raised"]
    assert crashes == [], crashes
    assert relay.process.poll() is None
