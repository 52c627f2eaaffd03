"""Faults in the Lambda code's AWS calls: what the caller sees, what is stored, what is retried.

DynamoDB faults are injected into the one DynamoDB client the stores share (see
``tests.fakes.dynamodb_faults``) at every call site; management API faults come from the fake
management API's scripted statuses. Injected error answers stand for the last attempt: botocore
has already made its own retries below the hook (standard mode, 3 attempts, checked here too).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import botocore.retries.standard
import pytest

from tests.events import load_event, with_body, with_query
from tests.fakes.dynamodb_faults import UNAVAILABLE, DynamoDBFaults
from tests.fakes.lambda_context import FakeLambdaContext
from tests.fakes.management_api import FakeManagementApi
from userstatus import broadcast, http_api, keys, management_api, websocket_api
from userstatus.model import Message
from userstatus.runtime import runtime

pytestmark = pytest.mark.usefixtures("dynamodb")

MESSAGES = "messages-test"
CONNECTIONS = "connections-test"
UNAVAILABLE_BODY = {"error": "message store unavailable, retry later"}


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without waiting: the management API's backoff and botocore's."""
    monkeypatch.setattr(management_api, "BACKOFF_SECONDS", 0.0001)
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0
    )


@pytest.fixture
def faults() -> Iterator[DynamoDBFaults]:
    client = runtime().messages._client
    assert runtime().connections._client is client
    with DynamoDBFaults(client) as injected:
        yield injected


# -- helpers --------------------------------------------------------------------------------


def http(event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    response = http_api.handler(event, FakeLambdaContext())
    return response["statusCode"], response["headers"], json.loads(response["body"])


def ws(event: dict[str, Any], connection_id: str = "VfgCPdIeoAMCJxA=") -> tuple[int, Any]:
    event["requestContext"]["connectionId"] = connection_id
    response = websocket_api.handler(event, FakeLambdaContext())
    body = response.get("body")
    return response["statusCode"], json.loads(body) if body else None


def reset(dynamodb: Any, faults: DynamoDBFaults, fake: FakeManagementApi | None = None) -> None:
    """Empty both tables, forget injected faults and recorded posts (between subtests)."""
    for table, schema in ((MESSAGES, keys.MESSAGES), (CONNECTIONS, keys.CONNECTIONS)):
        names = (schema.partition_key.name, schema.sort_key.name)
        for item in dynamodb.scan(TableName=table)["Items"]:
            dynamodb.delete_item(TableName=table, Key={name: item[name] for name in names})
    faults.faults.clear()
    faults.calls.clear()
    faults.page_size = None
    if fake is not None:
        with fake._lock:
            fake.posts.clear()
            fake.statuses.clear()
            fake.gone.clear()


def messages_stored(dynamodb: Any) -> list[str]:
    return sorted(i["message"]["S"] for i in dynamodb.scan(TableName=MESSAGES)["Items"])


def connection_rows(dynamodb: Any) -> list[tuple[str, str]]:
    items = dynamodb.scan(TableName=CONNECTIONS)["Items"]
    return sorted((i["site"]["S"], i["connection_id"]["S"]) for i in items)


def connect(site: str, *connection_ids: str) -> None:
    """Viewers connected an hour ago (a 410 from them means they are gone)."""
    for connection_id in connection_ids:
        runtime().connections.add(site, connection_id, now=time.time() - 3600)


def record(site: str, text: str, seq: int) -> dict[str, Any]:
    message = Message(site, text, "info", Decimal(1604514063 + seq), f"{seq:032x}")
    image = runtime().messages.item_of(message, received_at=1604514063)
    return {
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "dynamodb": {"NewImage": image, "SequenceNumber": str(seq), "StreamViewType": "NEW_IMAGE"},
    }


def run(records: list[dict[str, Any]]) -> list[str]:
    """Invoke the broadcaster once; the sequence numbers it asks to retry."""
    result = broadcast.handler({"Records": records}, FakeLambdaContext())
    return [failure["itemIdentifier"] for failure in result["batchItemFailures"]]


def retry_until_done(records: list[dict[str, Any]], max_invocations: int = 5) -> list[list[str]]:
    """Invoke as Lambda's event source mapping does: resume from the first reported failure."""
    reported: list[list[str]] = []
    while records:
        assert len(reported) < max_invocations, f"the stream is blocked: {reported}"
        failures = run(records)
        reported.append(failures)
        if not failures:
            break
        first = [r["dynamodb"]["SequenceNumber"] for r in records].index(failures[0])
        assert failures == [r["dynamodb"]["SequenceNumber"] for r in records[first:]]
        records = records[first:]
    return reported


def received(fake: FakeManagementApi, connection_id: str) -> list[str]:
    return [json.loads(body)["message"] for body in fake.posts_to(connection_id)]


# -- DynamoDB faults at the HTTP API's call sites ---------------------------------------------


def test_the_shared_dynamodb_client_makes_3_attempts_in_standard_mode() -> None:
    # Three attempts in all, the number userstatus.deadline budgets for.
    config = runtime().messages._client.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert (config.connect_timeout, config.read_timeout) == (1, 2)


def test_post_put_item_fault_is_503_retry_after_and_nothing_stored(
    dynamodb: Any, faults: DynamoDBFaults, subtests: pytest.Subtests
) -> None:
    for code, status in UNAVAILABLE:
        with subtests.test(code=code):
            reset(dynamodb, faults)
            faults.fail("PutItem", code, status, table=MESSAGES)
            seen, headers, body = http(load_event("http_post_newlog"))
            assert (seen, headers["Retry-After"]) == (503, "1")
            assert body == UNAVAILABLE_BODY
            assert headers["Access-Control-Allow-Origin"] == "*"
            assert messages_stored(dynamodb) == []
            assert faults.count("PutItem") == 1
            # The caller's retry goes through and stores the message once.
            assert http(load_event("http_post_newlog"))[0] == 200
            assert messages_stored(dynamodb) == ["Slewing telescope..."]


def test_post_sdk_retries_unsent_attempts_and_gives_up_after_3(
    dynamodb: Any, faults: DynamoDBFaults
) -> None:
    # Given two refused attempts, the SDK's third attempt stores the message once
    faults.refuse_connections("PutItem", times=2)
    assert http(load_event("http_post_newlog"))[0] == 200
    assert faults.attempts.count("PutItem") == 3
    assert messages_stored(dynamodb) == ["Slewing telescope..."]
    # Given three refused attempts, the caller gets 503 and nothing more is stored
    faults.refuse_connections("PutItem", times=3)
    seen, headers, _ = http(load_event("http_post_newlog"))
    assert (seen, headers["Retry-After"]) == (503, "1")
    assert faults.attempts.count("PutItem") == 6
    assert messages_stored(dynamodb) == ["Slewing telescope..."]


def test_post_whose_answer_was_lost_is_stored_once_and_answered_200(
    dynamodb: Any, faults: DynamoDBFaults
) -> None:
    # Given the put reaches DynamoDB but its answer is lost, so the SDK sends it again
    faults.lose_response("PutItem")
    seen, _, body = http(load_event("http_post_newlog"))
    # Then the message is stored once, and the caller is told so (not "internal error",
    # which makes observatory scripts post it again: a duplicate with a new id)
    assert faults.attempts.count("PutItem") == 2
    assert messages_stored(dynamodb) == ["Slewing telescope..."]
    assert (seen, body.get("message")) == (200, "Slewing telescope..."), body


def _seed(count: int) -> None:
    for i in range(count):
        message = Message("tst", f"m{i}", "info", Decimal(1000 + i), f"{i:032x}")
        runtime().messages.put(message, received_at=time.time())


def test_recent_logs_query_fault_is_503_without_a_partial_answer(
    dynamodb: Any, faults: DynamoDBFaults, subtests: pytest.Subtests
) -> None:
    # Given 7 messages read in pages of 2
    _seed(7)
    faults.page_size = 2
    query = {"site": "tst", "after_time": "0"}
    for (code, status), page in itertools.product(UNAVAILABLE, (1, 3)):
        with subtests.test(code=code, page=page):
            faults.faults.clear()
            faults.calls.clear()
            faults.fail("Query", code, status, table=MESSAGES, skip=page - 1)
            seen, headers, body = http(with_query("http_get_recent_logs", query))
            assert (seen, headers["Retry-After"], body) == (503, "1", UNAVAILABLE_BODY)
            assert faults.count("Query") == page
            # Once the store recovers, every page is read again from the start.
            seen, _, body = http(with_query("http_get_recent_logs", query))
            assert seen == 200
            assert [entry["message"] for entry in body] == [f"m{i}" for i in range(7)]
            assert faults.count("Query") == page + 4


def test_onlineusers_query_fault_is_503(faults: DynamoDBFaults, subtests: pytest.Subtests) -> None:
    connect("tst", "a=", "b=", "c=")
    faults.page_size = 2
    for (code, status), page in itertools.product(UNAVAILABLE, (1, 2)):
        with subtests.test(code=code, page=page):
            faults.faults.clear()
            faults.fail("Query", code, status, table=CONNECTIONS, skip=page - 1)
            seen, headers, body = http(load_event("http_get_onlineusers"))
            assert (seen, headers["Retry-After"], body) == (503, "1", UNAVAILABLE_BODY)
            assert http(load_event("http_get_onlineusers"))[2] == {"site": "tst", "connections": 3}


# -- DynamoDB faults at the WebSocket API's call sites ----------------------------------------


def test_connect_put_item_fault_rejects_the_handshake_with_503_and_stores_nothing(
    dynamodb: Any, faults: DynamoDBFaults, subtests: pytest.Subtests
) -> None:
    for code, status in UNAVAILABLE:
        with subtests.test(code=code):
            reset(dynamodb, faults)
            faults.fail("PutItem", code, status, table=CONNECTIONS)
            assert ws(load_event("ws_connect")) == (503, UNAVAILABLE_BODY)
            assert connection_rows(dynamodb) == []
            # The client's reconnect is recorded.
            assert ws(load_event("ws_connect")) == (200, None)
            assert connection_rows(dynamodb) == [("tst", "VfgCPdIeoAMCJxA=")]


def without_display(answer: tuple[int, Any]) -> tuple[int, Any]:
    """An error frame without the fields it carries for the frontend, once they are checked."""
    status, frame = answer
    display = {key: frame.pop(key) for key in ("message", "log_level", "timestamp")}
    assert display["message"] == frame["error"]
    assert display["log_level"] == "error"
    assert display["timestamp"].isdigit()
    return status, frame


def test_disconnect_fault_is_503_and_the_row_stays_until_its_ttl(
    dynamodb: Any, faults: DynamoDBFaults, subtests: pytest.Subtests
) -> None:
    for (code, status), operation in itertools.product(UNAVAILABLE, ("Query", "DeleteItem")):
        with subtests.test(code=code, operation=operation):
            reset(dynamodb, faults)
            connect("tst", "VfgCPdIeoAMCJxA=")
            faults.fail(operation, code, status, table=CONNECTIONS)
            assert without_display(ws(load_event("ws_disconnect"))) == (
                503,
                {**UNAVAILABLE_BODY, "status": 503},
            )
            # API Gateway ignores the answer; the row stays until a 410 or its TTL removes it
            assert connection_rows(dynamodb) == [("tst", "VfgCPdIeoAMCJxA=")]
            [item] = dynamodb.scan(TableName=CONNECTIONS)["Items"]
            assert int(item[keys.EXPIRES_AT]["N"]) <= time.time() + 3 * 3600
            # A repeated $disconnect removes it.
            assert ws(load_event("ws_disconnect")) == (200, None)
            assert connection_rows(dynamodb) == []


def test_websocket_newlog_put_item_fault_is_a_503_error_frame_and_nothing_stored(
    dynamodb: Any, faults: DynamoDBFaults, subtests: pytest.Subtests
) -> None:
    for code, status in UNAVAILABLE:
        with subtests.test(code=code):
            reset(dynamodb, faults)
            faults.fail("PutItem", code, status, table=MESSAGES)
            assert without_display(ws(load_event("ws_newlog"))) == (
                503,
                {**UNAVAILABLE_BODY, "status": 503},
            )
            assert messages_stored(dynamodb) == []
            assert ws(load_event("ws_newlog")) == (200, None)
            assert messages_stored(dynamodb) == ["Dome opening"]


# -- DynamoDB faults at the broadcaster's call sites ------------------------------------------


def test_broadcast_connections_query_fault_retries_from_that_record_and_delivers_once(
    dynamodb: Any,
    faults: DynamoDBFaults,
    management_api: FakeManagementApi,
    subtests: pytest.Subtests,
) -> None:
    for (code, status), page in itertools.product(UNAVAILABLE, (1, 2)):
        with subtests.test(code=code, page=page):
            reset(dynamodb, faults, management_api)
            # Given 3 connections of "tst" (2 query pages), 1 of "obs", a batch of 4 records
            connect("tst", "a=", "b=", "c=")
            connect("obs", "o=")
            faults.page_size = 2
            faults.fail("Query", code, status, table=CONNECTIONS, skip=1 + page - 1)
            records = [record("obs", "o1", 1), record("tst", "t1", 2), record("obs", "o2", 3)]
            records.append(record("tst", "t2", 4))
            # When the query of "tst" fails once, and Lambda retries as reported
            reported = retry_until_done(records)
            # Then "t1" and all after it are retried, then all delivered once, in order
            assert reported == [["2", "3", "4"], []]
            assert received(management_api, "o=") == ["o1", "o2"]
            for connection_id in ("a=", "b=", "c="):
                assert received(management_api, connection_id) == ["t1", "t2"]


def test_broadcast_410_delete_fault_neither_blocks_nor_posts_the_gone_connection_again(
    dynamodb: Any,
    faults: DynamoDBFaults,
    management_api: FakeManagementApi,
    subtests: pytest.Subtests,
) -> None:
    for code, status in UNAVAILABLE:
        with subtests.test(code=code):
            reset(dynamodb, faults, management_api)
            connect("tst", "gone=", "live=")
            management_api.gone = {"gone="}
            faults.fail("DeleteItem", code, status, table=CONNECTIONS)
            assert run([record("tst", "one", 1), record("tst", "two", 2)]) == []
            assert len(management_api.posts_to("gone=")) == 1
            assert received(management_api, "live=") == ["one", "two"]
            # The row stays until the next broadcast's 410 or its TTL removes it.
            assert ("tst", "gone=") in connection_rows(dynamodb)
            assert run([record("tst", "three", 3)]) == []
            assert connection_rows(dynamodb) == [("tst", "live=")]


# -- management API faults --------------------------------------------------------------------


def test_410_forgets_the_connection_and_never_posts_to_it_again(
    dynamodb: Any, management_api: FakeManagementApi
) -> None:
    connect("tst", "gone=", "live=")
    management_api.gone = {"gone="}
    assert run([record("tst", str(i), i) for i in range(1, 4)]) == []
    assert len(management_api.posts_to("gone=")) == 1
    assert received(management_api, "live=") == ["1", "2", "3"]
    assert connection_rows(dynamodb) == [("tst", "live=")]


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_a_transient_answer_is_retried_and_delivered_once(
    management_api: FakeManagementApi, status: int
) -> None:
    connect("tst", "flaky=", "fine=")
    management_api.statuses = {"flaky=": [status, status, 200]}
    assert run([record("tst", "one", 1), record("tst", "two", 2)]) == []
    # 3 posts for "one" (2 refused, 1 taken), 1 for "two"
    assert len(management_api.posts_to("flaky=")) == 4
    assert received(management_api, "fine=") == ["one", "two"]


def test_a_post_throttled_until_the_deadline_counts_failed_without_blocking_the_stream(
    management_api: FakeManagementApi,
) -> None:
    # Given a connection throttled on every post, and an invocation with 5.6 s left (the
    # broadcaster keeps 5 s in reserve: 0.6 s of posting)
    connect("tst", "throttled=", "fine=")
    management_api.statuses = {"throttled=": [429]}
    context = FakeLambdaContext(remaining_millis=5_600)
    result = broadcast.handler({"Records": [record("tst", "one", 1)]}, context)
    # Then it was tried more often than MAX_ATTEMPTS, until the deadline, then given up on;
    # the other viewer has the message and the record is not retried (nothing twice)
    assert result["batchItemFailures"] == []
    assert len(management_api.posts_to("throttled=")) > management_api_attempts()
    assert received(management_api, "fine=") == ["one"]


@pytest.mark.parametrize("status", [500, 503])
def test_a_persistent_failure_gives_up_after_max_attempts_without_blocking_the_stream(
    dynamodb: Any, management_api: FakeManagementApi, status: int
) -> None:
    connect("tst", "broken=", "fine=")
    management_api.statuses = {"broken=": [status]}
    assert run([record("tst", "one", 1), record("tst", "two", 2)]) == []
    assert len(management_api.posts_to("broken=")) == 2 * management_api_attempts()
    assert received(management_api, "fine=") == ["one", "two"]
    # Not gone: the connection is kept for the next messages.
    assert ("tst", "broken=") in connection_rows(dynamodb)


def management_api_attempts() -> int:
    return management_api.MAX_ATTEMPTS


def test_a_connection_vanishing_mid_broadcast_gets_what_it_took_and_nothing_twice(
    dynamodb: Any, management_api: FakeManagementApi
) -> None:
    # Given "leaving=" takes the first message and is gone from the second on
    connect("tst", "leaving=", "staying=")
    management_api.statuses = {"leaving=": [200, 410]}
    assert run([record("tst", str(i), i) for i in range(1, 5)]) == []
    assert received(management_api, "leaving=") == ["1", "2"]
    assert received(management_api, "staying=") == ["1", "2", "3", "4"]
    assert connection_rows(dynamodb) == [("tst", "staying=")]


def test_a_connection_closed_before_answering_is_retried_and_delivered_once(
    management_api: FakeManagementApi,
) -> None:
    connect("tst", "a=")
    management_api.hang_up["a="] = 2
    assert run([record("tst", "one", 1)]) == []
    assert received(management_api, "a=") == ["one"]


def test_a_post_that_times_out_is_not_sent_again(management_api: FakeManagementApi) -> None:
    # Given an answer slower than the poster's timeout: the post may have been delivered
    connect("tst", "slow=")
    runtime().poster._timeout = 0.05
    management_api.delay = 0.3
    assert run([record("tst", "one", 1)]) == []
    assert len(management_api.posts_to("slow=")) == 1


# -- a poisoned stream record -----------------------------------------------------------------


def _poison(kind: str) -> dict[str, Any]:
    poisoned = record("tst", "poison", 2)
    image = poisoned["dynamodb"]["NewImage"]
    if kind == "no-new-image":
        del poisoned["dynamodb"]["NewImage"]
    elif kind == "no-dynamodb":
        del poisoned["dynamodb"]
    elif kind == "message-not-a-string":
        image["message"] = {"N": "5"}
    elif kind == "bad-site":
        image["site"] = {"S": "../etc"}
    elif kind == "no-sort-key":
        del image["sk"]
    elif kind == "timestamp-not-a-number":
        image["timestamp"] = {"N": "soon"}
    elif kind == "timestamp-nan":
        image["timestamp"] = {"N": "NaN"}
    elif kind == "timestamp-infinite":
        image["timestamp"] = {"N": "Infinity"}
    return poisoned


@pytest.mark.parametrize(
    "kind",
    [
        "no-new-image",
        "no-dynamodb",
        "message-not-a-string",
        "bad-site",
        "no-sort-key",
        "timestamp-not-a-number",
        "timestamp-nan",
        "timestamp-infinite",
    ],
)
def test_a_poisoned_record_is_skipped_and_the_others_delivered_once(
    management_api: FakeManagementApi, kind: str
) -> None:
    connect("tst", "a=", "b=")
    records = [record("tst", "ok1", 1), _poison(kind), record("tst", "ok3", 3)]
    assert retry_until_done(records, max_invocations=1) == [[]]
    for connection_id in ("a=", "b="):
        assert received(management_api, connection_id) == ["ok1", "ok3"]


def test_a_batch_with_every_fault_at_once_delivers_each_message_once(
    faults: DynamoDBFaults, management_api: FakeManagementApi
) -> None:
    # Given a poisoned record, a gone connection, a flaky one and a failing connections query
    connect("tst", "gone=", "flaky=", "fine=")
    connect("obs", "o=")
    management_api.gone = {"gone="}
    management_api.statuses = {"flaky=": [429, 200]}
    faults.fail("Query", "ThrottlingException", 400, table=CONNECTIONS, skip=1)
    records = [record("tst", "t1", 1), _poison("no-new-image"), record("obs", "o1", 3)]
    records += [record("tst", "t2", 4)]
    # When Lambda retries as reported
    reported = retry_until_done(records)
    # Then only the record whose query failed and those after it were retried
    assert reported == [["3", "4"], []]
    assert received(management_api, "fine=") == ["t1", "t2"]
    assert received(management_api, "flaky=") == ["t1", "t1", "t2"]
    assert [json.loads(b)["message"] for b in management_api.posts_to("gone=")] == ["t1"]
    assert received(management_api, "o=") == ["o1"]
    assert faults.count("DeleteItem") == 1


def test_recent_logs_during_a_post_fault_show_only_whole_messages(
    faults: DynamoDBFaults,
) -> None:
    faults.fail("PutItem", "InternalServerError", 500, table=MESSAGES)
    assert http(with_body("http_post_newlog", {"site": "tst", "log_message": "lost"}))[0] == 503
    assert http(with_body("http_post_newlog", {"site": "tst", "log_message": "kept"}))[0] == 200
    seen, _, body = http(with_query("http_get_recent_logs", {"site": "tst", "after_time": "0"}))
    assert seen == 200
    assert [entry["message"] for entry in body] == ["kept"]
