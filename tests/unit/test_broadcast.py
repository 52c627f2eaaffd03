"""The broadcaster: stream records in, frames out to the fake management API."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest

from tests.events import load_event
from tests.fakes.lambda_context import FakeLambdaContext
from tests.fakes.management_api import FakeManagementApi
from userstatus import broadcast, management_api
from userstatus.errors import StoreUnavailable
from userstatus.model import Message
from userstatus.runtime import runtime

pytestmark = pytest.mark.usefixtures("dynamodb")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(management_api, "BACKOFF_SECONDS", 0.001)


def connect(site: str, *connection_ids: str) -> None:
    for connection_id in connection_ids:
        runtime().connections.add(site, connection_id, now=time.time())


def record(site: str, text: str, seq: int, *, event_name: str = "INSERT") -> dict[str, Any]:
    message = Message(site, text, "warning", Decimal("1604514063.9"), f"{seq:032x}")
    image = runtime().messages.item_of(message, received_at=1604514063)
    return {
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "dynamodb": {"NewImage": image, "SequenceNumber": str(seq), "StreamViewType": "NEW_IMAGE"},
    }


def run(*records: dict[str, Any]) -> list[str]:
    result = broadcast.handler({"Records": list(records)}, FakeLambdaContext())
    return [failure["itemIdentifier"] for failure in result["batchItemFailures"]]


def frames(fake: FakeManagementApi, connection_id: str) -> list[dict[str, Any]]:
    return [json.loads(body) for body in fake.posts_to(connection_id)]


def test_sample_insert_reaches_every_connection_of_its_site_in_the_frontend_shape(
    management_api: FakeManagementApi,
) -> None:
    connect("tst", "a=", "b=")
    connect("other", "c=")
    assert broadcast.handler(load_event("stream_insert"), FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    expected = {
        "site": "tst",
        "message": "Slewing telescope...",
        "log_level": "warning",
        "timestamp": "1604514063",
    }
    assert frames(management_api, "a=") == [expected]
    assert frames(management_api, "b=") == [expected]
    assert frames(management_api, "c=") == []


def test_messages_arrive_in_stream_order(management_api: FakeManagementApi) -> None:
    connect("tst", "a=")
    assert run(*(record("tst", str(i), i) for i in range(1, 11))) == []
    assert [f["message"] for f in frames(management_api, "a=")] == [str(i) for i in range(1, 11)]


def test_modify_and_remove_records_are_ignored(management_api: FakeManagementApi) -> None:
    connect("tst", "a=")
    assert (
        run(record("tst", "m", 1, event_name="MODIFY"), record("tst", "r", 2, event_name="REMOVE"))
        == []
    )
    assert management_api.posts == []


def test_gone_connections_are_deleted_and_not_posted_again(
    dynamodb: Any, management_api: FakeManagementApi
) -> None:
    connect("tst", "alive=", "stale=")
    management_api.gone = {"stale="}
    assert run(record("tst", "one", 1), record("tst", "two", 2)) == []
    remaining = [
        i["connection_id"]["S"] for i in dynamodb.scan(TableName="connections-test")["Items"]
    ]
    assert remaining == ["alive="]
    assert len(management_api.posts_to("stale=")) == 1
    assert len(frames(management_api, "alive=")) == 2


def test_one_failing_connection_does_not_stop_the_others(
    management_api: FakeManagementApi,
) -> None:
    connect("tst", "broken=", "fine=")
    management_api.statuses = {"broken=": [500]}
    assert run(record("tst", "x", 1)) == []
    assert len(frames(management_api, "fine=")) == 1


def test_failed_record_and_those_after_it_are_retried_earlier_ones_are_not(
    monkeypatch: pytest.MonkeyPatch, management_api: FakeManagementApi
) -> None:
    # Given the connections query fails for site "bad" only
    connect("tst", "a=")
    connections = runtime().connections
    real_query = connections.connection_ids

    def flaky(site: str, *, now: float) -> list[str]:
        if site == "bad":
            raise StoreUnavailable()
        return real_query(site, now=now)

    monkeypatch.setattr(connections, "connection_ids", flaky)
    # When a batch has a good record, the failing one, then another good one
    failures = run(record("tst", "before", 1), record("bad", "x", 2), record("tst", "after", 3))
    # Then the failing record and everything after it are reported, and "after" is not sent yet
    assert failures == ["2", "3"]
    assert [f["message"] for f in frames(management_api, "a=")] == ["before"]


def test_malformed_record_is_skipped_without_blocking_the_batch(
    management_api: FakeManagementApi,
) -> None:
    connect("tst", "a=")
    poisoned = record("tst", "poison", 2)
    del poisoned["dynamodb"]["NewImage"]["message"]
    wrong_site = record("tst", "bad site", 3)
    wrong_site["dynamodb"]["NewImage"]["site"] = {"S": "../etc"}
    assert run(record("tst", "ok1", 1), poisoned, wrong_site, record("tst", "ok2", 4)) == []
    assert [f["message"] for f in frames(management_api, "a=")] == ["ok1", "ok2"]


def test_each_connection_gets_each_message_once(management_api: FakeManagementApi) -> None:
    ids = [f"c{i}=" for i in range(40)]
    connect("tst", *ids)
    assert run(*(record("tst", str(i), i) for i in range(1, 6))) == []
    assert len(management_api.posts) == 200
    for connection_id in ids:
        assert [f["message"] for f in frames(management_api, connection_id)] == [
            "1",
            "2",
            "3",
            "4",
            "5",
        ]


def test_empty_batch_is_fine() -> None:
    assert run() == []


def test_records_it_has_no_time_for_are_left_for_the_retry(
    management_api: FakeManagementApi,
) -> None:
    # Given an invocation with less time left than the broadcaster keeps in reserve
    connect("tst", "a=")
    context = FakeLambdaContext(remaining_millis=int(broadcast.TIME_RESERVE_SECONDS * 1000) - 1)
    # When a batch arrives
    result = broadcast.handler({"Records": [record("tst", "1", 1), record("tst", "2", 2)]}, context)
    # Then nothing is posted and every record is reported for retry
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["1", "2"]
    assert management_api.posts == []


def test_posts_unfinished_at_the_deadline_fail_without_being_sent_again(
    management_api: FakeManagementApi,
) -> None:
    # Given slow connections and a fan-out deadline that passes while posting
    management_api.delay = 0.5
    ids = [f"slow{i}=" for i in range(3)]
    result = runtime().poster.post_to_all(ids, b"{}", deadline=time.monotonic() + 0.1)
    # Then each is counted failed, and was posted at most once
    assert (result.delivered, sorted(result.failed)) == (0, sorted(ids))
    assert all(len(management_api.posts_to(i)) <= 1 for i in ids)


def test_a_malformed_answer_fails_one_connection_not_the_fan_out(
    management_api: FakeManagementApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    poster = runtime().poster
    real_post = poster._post

    async def garbled(signer: Any, connection_id: str, payload: bytes, body_hash: str) -> int:
        if connection_id == "bad=":
            raise ValueError("garbled answer")
        return await real_post(signer, connection_id, payload, body_hash)

    monkeypatch.setattr(poster, "_post", garbled)
    result = poster.post_to_all(["bad=", "good="], b"{}")
    assert (result.delivered, result.failed) == (1, ["bad="])
