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
    await_until,
    online_users,
    post_message,
    subscribe,
    wait_until,
)
from userstatus_local.process import RelayProcess


@pytest.fixture(scope="module")
def flaky_api_gateway() -> Iterator[RelayProcess]:
    """A relay whose API Gateway drops every $disconnect and throttles every post (429)."""
    with RelayProcess.start("--fault-drop-disconnect", "1", "--fault-post-429", "1") as relay:
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


def test_posts_answered_429_are_retried_then_counted_failed(
    flaky_api_gateway: RelayProcess,
) -> None:
    relay = flaky_api_gateway
    target = Target.relay(relay)
    site = new_site()
    throttled_before = len(logged(relay, "fault: post answered 429"))

    async def scenario() -> None:
        async with subscribe(target, site):
            # When a message is broadcast while API Gateway throttles every post
            answer = await asyncio.to_thread(post, relay, site, "throttled")
            assert answer.status == 200
            # Then the broadcaster tries the post 4 times, then counts it failed
            await await_until(
                lambda: asyncio.to_thread(
                    lambda: len(logged(relay, "fault: post answered 429")) - throttled_before >= 4
                )
            )
            await await_until(
                lambda: asyncio.to_thread(
                    lambda: any(
                        site in r.get("sites", []) and r["failed"] == 1
                        for r in logged(relay, "batch done")
                    )
                )
            )

    asyncio.run(scenario())
    assert len(logged(relay, "fault: post answered 429")) - throttled_before == 4


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
