"""Posting and receiving through the target: real HTTP, a real WebSocket client, real handlers."""

from __future__ import annotations

import asyncio
import json
import math
import time

from tests.e2e.targets import Target
from tests.e2e.wire import (
    apost,
    expect_silence,
    post_message,
    receive_json,
    receive_n,
    recent_logs,
    subscribe,
)


def test_posted_message_reaches_subscriber_with_exact_payload(target: Target, site: str) -> None:
    async def scenario() -> None:
        async with subscribe(target, site) as subscriber:
            answer = await apost(
                target, site=site, log_message="dome open", log_level="WARN", timestamp=1.7e9 + 0.75
            )
            assert answer.status == 200, answer.text
            frame = await receive_json(subscriber)
        assert frame == {
            "site": site,
            "message": "dome open",
            "log_level": "warning",
            "timestamp": "1700000000",
        }

    asyncio.run(scenario())


def test_default_timestamp_is_whole_seconds_of_receipt(target: Target, site: str) -> None:
    async def scenario() -> None:
        async with subscribe(target, site) as subscriber:
            before = math.floor(time.time())
            answer = await apost(target, site=site, log_message="no timestamp")
            after = math.floor(time.time())
            frame = await receive_json(subscriber)
        assert answer.status == 200
        assert sorted(frame) == ["log_level", "message", "site", "timestamp"]
        assert frame["log_level"] == "info"
        assert isinstance(frame["timestamp"], str)
        assert before <= int(frame["timestamp"]) <= after

    asyncio.run(scenario())


def test_two_sites_are_kept_apart(target: Target, site: str) -> None:
    other_site = site + "-b"

    async def scenario() -> None:
        async with subscribe(target, site) as first, subscribe(target, other_site) as second:
            await apost(target, site=site, log_message="for the first")
            await apost(target, site=other_site, log_message="for the second")
            assert (await receive_json(first))["message"] == "for the first"
            assert (await receive_json(second))["message"] == "for the second"
            # Given both were delivered, a frame for the other site would have come by now.
            await expect_silence(first, 0.3)
            await expect_silence(second, 0.3)

    asyncio.run(scenario())


def test_messages_of_a_site_arrive_in_posting_order(target: Target, site: str) -> None:
    texts = [f"step {n}" for n in range(25)]

    async def scenario() -> None:
        async with subscribe(target, site) as subscriber:
            for text in texts:
                assert (await apost(target, site=site, log_message=text)).status == 200
            frames = await receive_n(subscriber, len(texts))
        assert [f["message"] for f in frames] == texts

    asyncio.run(scenario())
    assert [e["message"] for e in recent_logs(target, site)] == texts


def test_two_messages_in_the_same_second_are_both_kept(target: Target, site: str) -> None:
    second = int(time.time())

    async def scenario() -> None:
        async with subscribe(target, site) as subscriber:
            await apost(target, site=site, log_message="first", timestamp=second)
            await apost(target, site=site, log_message="second", timestamp=second)
            frames = await receive_n(subscriber, 2)
        assert [(f["message"], f["timestamp"]) for f in frames] == [
            ("first", str(second)),
            ("second", str(second)),
        ]

    asyncio.run(scenario())
    entries = recent_logs(target, site)
    # History keeps them in the order received, as they arrived live.
    assert [e["message"] for e in entries] == ["first", "second"]
    assert {e["timestamp"] for e in entries} == {second}


def test_recent_logs_answers_entries_oldest_first(target: Target, site: str) -> None:
    now = int(time.time())
    post_message(target, site=site, log_message="newer", log_level="error", timestamp=now - 10)
    post_message(target, site=site, log_message="older", timestamp=now - 20)
    post_message(target, site=site, log_message="too old", timestamp=now - 25 * 3600)

    assert recent_logs(target, site) == [
        {"site": site, "message": "older", "log_level": "info", "timestamp": now - 20},
        {"site": site, "message": "newer", "log_level": "error", "timestamp": now - 10},
    ]
    assert [e["message"] for e in recent_logs(target, site, after_time=now - 15)] == ["newer"]


def test_newlog_action_over_websocket_stores_and_broadcasts_with_no_answer(
    target: Target, site: str
) -> None:
    async def scenario() -> None:
        async with subscribe(target, site) as sender, subscribe(target, site) as listener:
            frame = {"action": "newlog", "site": site, "log_message": "via ws", "timestamp": 1.7e9}
            await sender.send(json.dumps(frame))
            expected = {
                "site": site,
                "message": "via ws",
                "log_level": "info",
                "timestamp": "1700000000",
            }
            # The sender gets its message through the broadcast, like every subscriber, and no
            # other frame (the frontend would render one as an empty log line).
            assert await receive_json(sender) == expected
            assert await receive_json(listener) == expected
            await expect_silence(sender, 0.5)

    asyncio.run(scenario())
    assert [e["message"] for e in recent_logs(target, site, after_time=0)] == ["via ws"]


def test_a_timestamp_a_year_ahead_is_stored_at_receipt_and_said_so(
    target: Target, site: str
) -> None:
    async def scenario() -> tuple[float, float, dict[str, object], dict[str, object]]:
        async with subscribe(target, site) as subscriber:
            before = time.time()
            answer = await apost(
                target, site=site, log_message="clock", timestamp=time.time() + 3.2e7
            )
            after = time.time()
            return before, after, answer.json, await receive_json(subscriber)

    before, after, stored, frame = asyncio.run(scenario())
    assert stored["adjusted"] == {
        "timestamp": "more than 24 hours ahead of receipt: stored at the time of receipt"
    }
    assert before - 1 <= float(str(stored["timestamp"])) <= after + 1
    assert frame["timestamp"] == str(math.floor(float(str(stored["timestamp"]))))
    [entry] = recent_logs(target, site)
    assert entry["timestamp"] == stored["timestamp"]
