"""The relay's faults on purpose, and the failure queue they can fill, as AWS behaves.

Each test runs a relay of its own with a fault hitting every event it names (share 1), so the
outcome is certain.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.targets import Target
from tests.e2e.wire import (
    TIMEOUT,
    online_users,
    post_message,
    receive_n,
    subscribe,
    wait_until,
)
from userstatus_local.process import RelayProcess


@pytest.fixture(scope="module")
def flaky_api_gateway() -> Iterator[RelayProcess]:
    """A relay whose API Gateway drops every $disconnect and throttles half the posts (429)."""
    with RelayProcess.start("--fault-drop-disconnect", "1", "--fault-post-429", "0.5") as relay:
        yield relay


@pytest.fixture(scope="module")
def throttled_dynamodb() -> Iterator[RelayProcess]:
    """A relay whose functions' DynamoDB calls are all throttled."""
    with RelayProcess.start("--fault-throttle-dynamodb", "1") as relay:
        yield relay


def new_site() -> str:
    return "fault-" + uuid.uuid4().hex[:12]


def logged(relay: RelayProcess, message: str) -> list[dict[str, Any]]:
    return [r for r in relay.log_records() if r.get("message") == message]


def post(relay: RelayProcess, site: str, text: str) -> Any:
    return post_message(Target.relay(relay), site=site, log_message=text)


def test_a_dropped_disconnect_leaves_the_connection_behind(
    flaky_api_gateway: RelayProcess,
) -> None:
    relay = flaky_api_gateway
    target = Target.relay(relay)
    site = new_site()
    before = len(logged(relay, "fault: $disconnect dropped"))

    async def scenario() -> None:
        async with subscribe(target, site):
            assert await asyncio.to_thread(online_users, target, site) == 1

    # When a viewer leaves and its $disconnect is lost, as API Gateway may lose it
    asyncio.run(scenario())
    wait_until(lambda: len(logged(relay, "fault: $disconnect dropped")) > before)
    # Then its row stays (until a broadcast finds it gone or its TTL ends)
    assert online_users(target, site) == 1


def test_posts_answered_429_are_retried_until_taken_and_arrive_in_order(
    flaky_api_gateway: RelayProcess,
) -> None:
    relay = flaky_api_gateway
    target = Target.relay(relay)
    site = new_site()
    throttled_before = len(logged(relay, "fault: post answered 429"))
    # 16 messages, each post throttled with probability 1/2: all 16 untouched is 1 in 65,536
    texts = [f"throttled {n}" for n in range(16)]

    async def scenario() -> list[Any]:
        async with subscribe(target, site) as connection:
            # When messages are broadcast while API Gateway throttles half the posts
            for text in texts:
                answer = await asyncio.to_thread(post, relay, site, text)
                assert answer.status == 200
            return await receive_n(connection, len(texts))

    # Then every message arrives, once and in order: a 429 is tried again until it is taken
    assert [frame["message"] for frame in asyncio.run(scenario())] == texts
    assert len(logged(relay, "fault: post answered 429")) > throttled_before
    batches = [r for r in logged(relay, "batch done") if site in r.get("sites", [])]
    assert sum(r["throttled"] for r in batches) >= 1
    assert sum(r["failed"] for r in batches) == 0


def test_throttled_dynamodb_answers_503_and_fills_the_failure_queue(
    throttled_dynamodb: RelayProcess,
) -> None:
    relay = throttled_dynamodb
    target = Target.relay(relay)
    site = new_site()
    # A post is answered 503 with Retry-After, as the function answers a throttled write
    answer = post(relay, site, "not stored")
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "1"
    # Given a message written to the table by someone else (not throttled)
    now = int(time.time())
    target.dynamodb().put_item(
        TableName=relay.messages_table,
        Item={
            "site": {"S": site},
            "sk": {"S": f"{now * 10**9:020d}#{uuid.uuid4().hex}"},
            "message": {"S": "written directly"},
            "log_level": {"S": "info"},
            "timestamp": {"N": str(now)},
            "expires_at": {"N": str(now + 3600)},
        },
    )

    # When the broadcaster cannot read the site's connections on any attempt
    def failures() -> list[dict[str, Any]]:
        lines = relay.failure_queue.read_text().splitlines()
        return [json.loads(line) for line in lines]

    wait_until(lambda: failures(), timeout=TIMEOUT)
    # Then after the stage's 3 retries (4 attempts) the record goes to the failure queue,
    # described as Lambda describes it to the stack's SQS queue
    [failure] = failures()
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 4
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1
    assert logged(relay, "records sent to the failure queue")
