"""A big site's broadcast split across invocations of the fan-out function."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.lambda_context import FakeLambdaContext
from tests.fakes.management_api import FakeManagementApi
from userstatus import broadcast, fanout, management_api
from userstatus.chunk_invoker import ChunkInvoker, FanoutError, lambda_invoke, result_of
from userstatus.config import ConfigError
from userstatus.management_api import FanoutResult
from userstatus.model import Message
from userstatus.runtime import Runtime, runtime

pytestmark = pytest.mark.usefixtures("dynamodb")

CHUNK = 3


@pytest.fixture(autouse=True)
def split_at_three(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(management_api, "BACKOFF_SECONDS", 0.001)
    monkeypatch.setattr(broadcast, "_gave_up_on", {})
    monkeypatch.setenv("FANOUT_FUNCTION_NAME", "fanout-test")
    monkeypatch.setenv("FANOUT_CHUNK_CONNECTIONS", str(CHUNK))
    runtime.cache_clear()


class InProcessLambda:
    """The fan-out function invoked in this process: its event and answer cross as JSON."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail_chunks_containing: str | None = None

    def __call__(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        payload = json.loads(json.dumps(event))
        self.events.append(payload)
        if self.fail_chunks_containing in payload["connection_ids"]:
            raise FanoutError("Unhandled: simulated function error")
        answer = fanout.handler(payload, FakeLambdaContext())
        return dict(json.loads(json.dumps(answer)))


@pytest.fixture
def invoked() -> InProcessLambda:
    function = InProcessLambda()
    runtime().__dict__["fanout"] = ChunkInvoker(function)
    return function


def connect(site: str, count: int) -> list[str]:
    ids = [f"c{i:02d}=" for i in range(count)]
    for connection_id in ids:
        runtime().connections.add(site, connection_id, now=time.time() - 3600)
    return ids


def record(site: str, text: str, seq: int) -> dict[str, Any]:
    message = Message(site, text, "info", Decimal("1604514063.9"), f"{seq:032x}")
    return {
        "eventName": "INSERT",
        "dynamodb": {
            "NewImage": runtime().messages.item_of(message, received_at=1604514063),
            "SequenceNumber": str(seq),
        },
    }


def texts(fake: FakeManagementApi, connection_id: str) -> list[str]:
    return [json.loads(body)["message"] for body in fake.posts_to(connection_id)]


def test_a_big_site_is_posted_to_once_per_viewer_by_chunks_in_stream_order(
    management_api: FakeManagementApi, invoked: InProcessLambda
) -> None:
    ids = connect("big", 8)
    answer = broadcast.handler(
        {"Records": [record("big", "one", 1), record("big", "two", 2)]}, FakeLambdaContext()
    )
    assert answer == {"batchItemFailures": []}
    for connection_id in ids:
        assert texts(management_api, connection_id) == ["one", "two"]
    # 8 viewers in chunks of 3: the broadcaster posts the first, two invocations the others
    # (started at once, so in either order), and message two's only after message one's
    invoked_for = [(json.loads(e["frame"])["message"], e["connection_ids"]) for e in invoked.events]
    assert [text for text, _ in invoked_for] == ["one", "one", "two", "two"]
    for text in ("one", "two"):
        chunks = sorted(chunk for message, chunk in invoked_for if message == text)
        assert chunks == [ids[3:6], ids[6:8]]
    assert all(e["seconds"] > 0 for e in invoked.events)


def test_a_site_within_one_chunk_costs_no_invocation(
    management_api: FakeManagementApi, invoked: InProcessLambda
) -> None:
    ids = connect("small", CHUNK)
    assert broadcast.handler({"Records": [record("small", "x", 1)]}, FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    assert invoked.events == []
    assert all(texts(management_api, i) == ["x"] for i in ids)


def test_a_failed_invocation_counts_its_chunk_as_failed_and_is_not_sent_again(
    management_api: FakeManagementApi, invoked: InProcessLambda, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the invocation of the chunk holding c04= fails (the function raised)
    ids = connect("big", 7)
    invoked.fail_chunks_containing = "c04="
    answer = broadcast.handler({"Records": [record("big", "x", 1)]}, FakeLambdaContext())
    # Then the record is not replayed (its other chunks were delivered) ...
    assert answer == {"batchItemFailures": []}
    # ... the failed chunk got nothing, every other viewer got the message once
    assert [i for i in ids if texts(management_api, i) == []] == ["c03=", "c04=", "c05="]
    assert all(texts(management_api, i) == ["x"] for i in ids if i not in {"c03=", "c04=", "c05="})
    done = [r for r in caplog.records if r.getMessage() == "batch done"][-1]
    assert (done.failed, done.invocations, done.invocations_failed) == (3, 2, 1)


def test_the_fan_out_function_answers_what_became_of_each_connection(
    management_api: FakeManagementApi,
) -> None:
    management_api.gone = {"gone="}
    answer = fanout.handler(
        {"frame": '{"m": 1}', "connection_ids": ["a=", "gone="], "seconds": 5},
        FakeLambdaContext(),
    )
    assert answer == {"delivered": 1, "gone": ["gone="], "failed": [], "throttled": 0}
    assert result_of(answer) == FanoutResult(delivered=1, gone=["gone="])


def test_the_fan_out_function_posts_nothing_without_time_left(
    management_api: FakeManagementApi,
) -> None:
    answer = fanout.handler(
        {"frame": "{}", "connection_ids": ["a=", "b="], "seconds": 0}, FakeLambdaContext()
    )
    assert answer["failed"] == ["a=", "b="]
    assert management_api.posts == []


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({"connection_ids": ["a="], "seconds": 1}, "frame"),
        ({"frame": "{}", "connection_ids": "a=", "seconds": 1}, "connection_ids"),
        ({"frame": "{}", "connection_ids": [1], "seconds": 1}, "connection_ids"),
        ({"frame": "{}", "connection_ids": ["a="], "seconds": True}, "seconds"),
    ],
)
def test_a_malformed_event_is_a_function_error_naming_the_field(
    event: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        fanout.handler(event, FakeLambdaContext())


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"delivered": "1", "gone": [], "failed": [], "throttled": 0},
        {"delivered": True, "gone": [], "failed": [], "throttled": 0},
        {"delivered": 1, "gone": [2], "failed": [], "throttled": 0},
        {"delivered": 1, "gone": None, "failed": [], "throttled": 0},
    ],
)
def test_an_unreadable_answer_is_a_fan_out_error(answer: dict[str, Any]) -> None:
    with pytest.raises(FanoutError, match="unreadable answer"):
        result_of(answer)


class StubLambdaClient:
    """boto3's Lambda client as far as ``lambda_invoke`` uses it."""

    def __init__(self, body: bytes, function_error: str | None = None) -> None:
        self._body = body
        self._function_error = function_error
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        answer: dict[str, Any] = {"StatusCode": 200, "Payload": io.BytesIO(self._body)}
        if self._function_error:
            answer["FunctionError"] = self._function_error
        return answer


def test_lambda_invoke_sends_a_synchronous_invocation_and_reads_the_answer() -> None:
    client = StubLambdaClient(b'{"delivered": 2, "gone": [], "failed": [], "throttled": 0}')
    answer = lambda_invoke(client, "fanout-test")({"frame": "{}", "connection_ids": ["a="]})
    assert answer["delivered"] == 2
    (call,) = client.calls
    assert call["FunctionName"] == "fanout-test"
    assert call["InvocationType"] == "RequestResponse"
    assert json.loads(call["Payload"]) == {"frame": "{}", "connection_ids": ["a="]}


@pytest.mark.parametrize(
    ("body", "function_error"),
    [
        (b'{"errorMessage": "Task timed out after 60.00 seconds"}', "Unhandled"),
        (b"not json", None),
        (b"[1, 2]", None),
    ],
)
def test_lambda_invoke_raises_for_a_function_error_or_an_unreadable_answer(
    body: bytes, function_error: str | None
) -> None:
    with pytest.raises(FanoutError):
        lambda_invoke(StubLambdaClient(body, function_error), "fanout-test")({})


def test_without_a_poster_no_chunk_is_invoked_and_the_record_is_retried(
    monkeypatch: pytest.MonkeyPatch, invoked: InProcessLambda
) -> None:
    # Given a container whose management API client cannot be built
    def no_poster(self: Runtime) -> None:
        raise ConfigError("WEBSOCKET_MANAGEMENT_ENDPOINT is required to broadcast")

    monkeypatch.setattr(Runtime, "poster", property(no_poster))
    connect("big", 7)
    answer = broadcast.handler({"Records": [record("big", "x", 1)]}, FakeLambdaContext())
    # Then nothing went out, not even the other chunks, and the record is retried whole
    assert answer == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    assert invoked.events == []
