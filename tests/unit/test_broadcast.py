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


@pytest.fixture(autouse=True)
def new_container(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is a fresh container: no connection given up on yet."""
    monkeypatch.setattr(broadcast, "_gave_up_on", {})


def connect(site: str, *connection_ids: str, ago: float = 3600) -> None:
    """Viewers connected ``ago`` seconds ago (an hour: established, a 410 means gone)."""
    for connection_id in connection_ids:
        runtime().connections.add(site, connection_id, now=time.time() - ago)


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
    real_query = connections.connections

    def flaky(site: str, *, now: float) -> list[Any]:
        if site == "bad":
            raise StoreUnavailable()
        return real_query(site, now=now)

    monkeypatch.setattr(connections, "connections", flaky)
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


def connection_ids_stored(dynamodb: Any, site: str) -> list[str]:
    items = dynamodb.scan(TableName="connections-test")["Items"]
    return sorted(i["connection_id"]["S"] for i in items if i["site"]["S"] == site)


def test_a_viewer_whose_connect_is_still_completing_gets_the_message_and_is_kept(
    dynamodb: Any, management_api: FakeManagementApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a viewer whose $connect wrote its row, but whom API Gateway does not yet let anyone
    # post to (it answers 410 until the handshake completes)
    monkeypatch.setattr(broadcast, "GONE_RETRY_WAITS", (0.01, 0.01, 0.01))
    connect("tst", "new=", ago=0)
    connect("tst", "old=")
    management_api.statuses["new="] = [410, 410, 200]
    # When a message is broadcast in that window
    assert run(record("tst", "just in time", 1)) == []
    # Then the viewer still gets it, after short waits (two posts refused 410, the third
    # delivered), and its row is kept
    assert [f["message"] for f in frames(management_api, "new=")] == ["just in time"] * 3
    assert management_api.statuses["new="] == [200]
    assert [f["message"] for f in frames(management_api, "old=")] == ["just in time"]
    assert connection_ids_stored(dynamodb, "tst") == ["new=", "old="]


def test_a_young_connection_that_stays_gone_is_not_deleted(
    dynamodb: Any, management_api: FakeManagementApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broadcast, "GONE_RETRY_WAITS", (0.01, 0.01))
    connect("tst", "young=", ago=1)
    management_api.gone.add("young=")
    assert run(record("tst", "one", 1), record("tst", "two", 2)) == []
    # Tried once, then twice more after waits; not again for the next record of the batch
    assert len(management_api.posts_to("young=")) == 3
    # The row stays: its $connect may still complete (TTL or a later broadcast removes it)
    assert connection_ids_stored(dynamodb, "tst") == ["young="]


def test_a_young_connection_given_up_on_costs_later_invocations_no_wait(
    management_api: FakeManagementApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a viewer that vanished a second after connecting (its row still there)
    monkeypatch.setattr(broadcast, "GONE_RETRY_WAITS", (0.01, 0.01))
    connect("tst", "vanished=", ago=1)
    management_api.gone.add("vanished=")
    assert run(record("tst", "one", 1)) == []
    assert len(management_api.posts_to("vanished=")) == 3
    # When the same container broadcasts again, with waits long enough to notice
    monkeypatch.setattr(broadcast, "GONE_RETRY_WAITS", (5.0,))
    started = time.monotonic()
    assert run(record("tst", "two", 2)) == []
    # Then the connection is posted to once more (it may have connected since), not waited for
    assert len(management_api.posts_to("vanished=")) == 4
    assert time.monotonic() - started < 5.0


def test_a_young_connection_given_up_on_still_gets_the_next_messages(
    management_api: FakeManagementApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a viewer whose handshake outlasts the waits of one broadcast
    monkeypatch.setattr(broadcast, "GONE_RETRY_WAITS", (0.01,))
    connect("tst", "slow=", ago=0)
    management_api.statuses["slow="] = [410, 410, 200]
    assert run(record("tst", "one", 1)) == []
    assert run(record("tst", "two", 2)) == []
    # Then it misses that message but is kept, and gets the next one at the first post
    assert [f["message"] for f in frames(management_api, "slow=")] == ["one", "one", "two"]


def test_an_old_connection_answering_410_is_deleted_at_once(
    dynamodb: Any, management_api: FakeManagementApi
) -> None:
    runtime().connections.add("tst", "stale=", now=time.time() - 3600)
    management_api.gone.add("stale=")
    assert run(record("tst", "hello", 1)) == []
    assert len(management_api.posts_to("stale=")) == 1
    assert connection_ids_stored(dynamodb, "tst") == []


def test_the_delete_of_a_gone_connection_spares_a_row_rewritten_meanwhile(
    dynamodb: Any,
) -> None:
    # Given a row read as connected an hour ago, then written again by a new $connect
    store = runtime().connections
    store.add("tst", "reused=", now=time.time() - 3600)
    [seen] = store.connections("tst", now=time.time())
    store.add("tst", "reused=", now=time.time())
    # When the broadcaster forgets the connection it saw
    assert store.remove_if_connected_before("tst", seen, cutoff=time.time() - 60) is False
    # Then the new row is left alone
    assert connection_ids_stored(dynamodb, "tst") == ["reused="]


def test_the_batch_log_names_the_sites_broadcast_to(
    management_api: FakeManagementApi, caplog: pytest.LogCaptureFixture
) -> None:
    connect("tst", "a=")
    connect("other", "b=")
    with caplog.at_level("INFO", logger="userstatus.broadcast"):
        assert run(record("tst", "one", 1), record("other", "two", 2)) == []
    [done] = [r for r in caplog.records if r.getMessage() == "batch done"]
    assert (done.sites, done.messages, done.delivered) == (["other", "tst"], 2, 2)
