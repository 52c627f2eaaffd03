"""The stream poller against a scripted stream: batches, event shape, partial-failure retries."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.wire import wait_until
from userstatus_local import stream_poller
from userstatus_local.stream_poller import StreamPoller

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/m/stream/label"


def stream_record(sequence_number: int) -> dict[str, Any]:
    """A record as moto's get_records answers it."""
    return {
        "eventID": f"event-{sequence_number}",
        "eventName": "INSERT",
        "eventVersion": "1.0",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 1, 1, tzinfo=UTC),
            "Keys": {"site": {"S": "tst"}, "sk": {"S": str(sequence_number)}},
            "NewImage": {"site": {"S": "tst"}, "sk": {"S": str(sequence_number)}},
            "SequenceNumber": str(sequence_number),
            "SizeBytes": 100,
            "StreamViewType": "NEW_IMAGE",
        },
    }


class ScriptedStream:
    """One shard that returns the given records once, then nothing."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self._pending = [records]
        self.iterator_types: list[str] = []

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        shard = {"ShardId": "shard-1", "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
        return {"StreamDescription": {"StreamArn": StreamArn, "Shards": [shard]}}

    def get_shard_iterator(self, **request: str) -> dict[str, str]:
        self.iterator_types.append(request["ShardIteratorType"])
        return {"ShardIterator": "iterator"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        records = self._pending.pop() if self._pending else []
        return {"Records": records, "NextShardIterator": ShardIterator}


class ShardedStream:
    """Shards that can appear while polling; each iterator is its shard's id.

    ``pending`` records are returned once; ``busy_shard`` returns a new record on every call
    (steady load); ``fail_next_get_records`` makes the next ``get_records`` raise once.
    """

    def __init__(
        self,
        shard_ids: list[str],
        pending: dict[str, list[dict[str, Any]]] | None = None,
        busy_shard: str | None = None,
    ) -> None:
        self.shard_ids = list(shard_ids)
        self.pending = dict(pending or {})
        self.busy_shard = busy_shard
        self.fail_next_get_records = False
        self.iterator_requests: list[tuple[str, str]] = []
        self._next_busy_sequence = 1000

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        shards = [
            {"ShardId": shard_id, "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
            for shard_id in list(self.shard_ids)
        ]
        return {"StreamDescription": {"StreamArn": StreamArn, "Shards": shards}}

    def get_shard_iterator(self, **request: str) -> dict[str, str]:
        self.iterator_requests.append((request["ShardId"], request["ShardIteratorType"]))
        return {"ShardIterator": request["ShardId"]}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        if self.fail_next_get_records:
            self.fail_next_get_records = False
            raise RuntimeError("ExpiredIteratorException")
        records = self.pending.pop(ShardIterator, [])
        if ShardIterator == self.busy_shard:
            self._next_busy_sequence += 1
            records = [stream_record(self._next_busy_sequence)]
        return {"Records": records, "NextShardIterator": ShardIterator}


class RecordingHandler:
    """A broadcast handler that fails the given sequence numbers a number of times."""

    def __init__(self, fail: Mapping[str, int] | None = None) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.contexts: list[Any] = []
        self._failures_left = dict(fail or {})

    def __call__(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        records = list(event["Records"])
        self.batches.append(records)
        self.contexts.append(context)
        failed = []
        for record in records:
            number = record["dynamodb"]["SequenceNumber"]
            if self._failures_left.get(number, 0) > 0:
                self._failures_left[number] -= 1
                failed.append({"itemIdentifier": number})
        return {"batchItemFailures": failed}


def run_poller(
    records: list[dict[str, Any]], handler: RecordingHandler, calls: int
) -> ScriptedStream:
    stream = ScriptedStream(records)
    poller = StreamPoller(stream, ARN, handler, batch_size=100, max_attempts=3)
    run_until(poller, lambda: len(handler.batches) >= calls)
    return stream


def run_until(poller: StreamPoller, condition: Callable[[], bool]) -> None:
    """Run ``poller`` until ``condition`` holds (at most 5 s), then stop it."""
    poller.start()
    try:
        wait_until(condition, timeout=5)
    finally:
        poller.stop()


def sequence_numbers(batch: list[dict[str, Any]]) -> list[int]:
    return [int(r["dynamodb"]["SequenceNumber"]) for r in batch]


def test_records_are_handed_over_in_lambda_shape_in_batches_of_100() -> None:
    handler = RecordingHandler()
    stream = run_poller([stream_record(n) for n in range(1, 251)], handler, calls=3)

    assert stream.iterator_types == ["LATEST"]
    assert [len(b) for b in handler.batches] == [100, 100, 50]
    assert sequence_numbers([r for b in handler.batches for r in b]) == list(range(1, 251))
    first = handler.batches[0][0]
    assert first["eventName"] == "INSERT"
    assert first["eventSource"] == "aws:dynamodb"
    assert first["eventSourceARN"] == ARN
    assert first["dynamodb"]["ApproximateCreationDateTime"] == 1767225600
    assert first["dynamodb"]["NewImage"] == {"site": {"S": "tst"}, "sk": {"S": "1"}}
    assert handler.contexts[0].get_remaining_time_in_millis() > 0
    assert handler.contexts[0].aws_request_id != handler.contexts[1].aws_request_id


def test_partial_failure_is_retried_from_the_lowest_failed_record() -> None:
    # Given records 3 and 5 fail once each
    handler = RecordingHandler(fail={"5": 1, "3": 1})
    run_poller([stream_record(n) for n in range(1, 7)], handler, calls=2)

    # Then the retry starts at 3, the lowest failure, and holds everything after it
    assert [sequence_numbers(b) for b in handler.batches] == [[1, 2, 3, 4, 5, 6], [3, 4, 5, 6]]


def test_retries_are_bounded_and_the_batch_goes_to_the_failure_queue() -> None:
    # Given a record that always fails
    handler = RecordingHandler(fail={"2": 1000})
    stream = ScriptedStream([stream_record(n) for n in range(1, 4)])
    failures: list[dict[str, Any]] = []
    poller = StreamPoller(stream, ARN, handler, max_attempts=3, on_failure=failures.append)
    run_until(poller, lambda: bool(failures))
    # Then it is tried three times in all, then described to the failure destination, as
    # Lambda describes a DynamoDB stream batch it gave up on, and skipped
    assert [sequence_numbers(b) for b in handler.batches] == [[1, 2, 3], [2, 3], [2, 3]]
    [failure] = failures
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    info = failure["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        "2",
        "3",
        2,
    )
    assert info["streamArn"] == ARN
    assert info["approximateArrivalOfFirstRecord"] == "2026-01-01T00:00:00Z"


def test_a_function_error_splits_the_batch_in_two() -> None:
    # Given a handler that raises on any batch holding record 8
    calls: list[list[int]] = []

    def crashing(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        numbers = sequence_numbers(list(event["Records"]))
        calls.append(numbers)
        if 8 in numbers:
            raise RuntimeError("boom")
        return {"batchItemFailures": []}

    failures: list[dict[str, Any]] = []
    stream = ScriptedStream([stream_record(n) for n in (5, 6, 7, 8)])
    poller = StreamPoller(stream, ARN, crashing, max_attempts=4, on_failure=failures.append)
    run_until(poller, lambda: bool(failures))
    # Then each half is retried on its own (BisectBatchOnFunctionError), the good records are
    # delivered, and the one that keeps failing goes to the failure queue once its attempts
    # are used up
    assert calls == [[5, 6, 7, 8], [5, 6], [7, 8], [7], [8], [8]]
    assert [f["DDBStreamBatchInfo"]["startSequenceNumber"] for f in failures] == ["8"]


def test_a_raising_handler_without_bisection_has_the_whole_batch_retried() -> None:
    calls: list[list[int]] = []

    def crashing(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        calls.append(sequence_numbers(list(event["Records"])))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return {"batchItemFailures": []}

    stream = ScriptedStream([stream_record(n) for n in (7, 8)])
    run_until(StreamPoller(stream, ARN, crashing, bisect_on_error=False), lambda: len(calls) >= 2)
    assert calls == [[7, 8], [7, 8]]


def test_records_past_the_maximum_age_are_not_handed_over() -> None:
    # Given records created on 2026-01-01 and a maximum record age of an hour
    handler = RecordingHandler()
    failures: list[dict[str, Any]] = []
    stream = ScriptedStream([stream_record(n) for n in (1, 2)])
    poller = StreamPoller(
        stream, ARN, handler, max_record_age_seconds=3600, on_failure=failures.append
    )
    run_until(poller, lambda: bool(failures))
    # Then the function never sees them, and they are described to the failure destination
    assert handler.batches == []
    [failure] = failures
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 2


def test_after_an_error_shards_without_a_handled_record_reopen_as_they_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream_poller, "SHARD_REFRESH_SECONDS", 0.0)
    monkeypatch.setattr(stream_poller, "ERROR_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(stream_poller, "IDLE_POLL_SECONDS", 0.01)
    # Given a shard open at start with a record, one open at start without any
    handler = RecordingHandler()
    stream = ShardedStream(["handled", "quiet"], pending={"handled": [stream_record(5)]})
    poller = StreamPoller(stream, ARN, handler)
    poller.start()
    try:
        wait_until(lambda: len(handler.batches) >= 1, timeout=5)
        # and a shard found later, with no record yet
        stream.shard_ids.append("later")
        wait_until(lambda: ("later", "TRIM_HORIZON") in stream.iterator_requests, timeout=5)
        # When a poll fails
        stream.fail_next_get_records = True
        wait_until(lambda: len(stream.iterator_requests) >= 6, timeout=5)
    finally:
        poller.stop()

    # Then each shard resumes after its last record, or from where it first started
    assert stream.iterator_requests == [
        ("handled", "LATEST"),
        ("quiet", "LATEST"),
        ("later", "TRIM_HORIZON"),
        ("handled", "AFTER_SEQUENCE_NUMBER"),
        ("quiet", "LATEST"),
        ("later", "TRIM_HORIZON"),
    ]


def test_new_shards_are_found_under_steady_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_poller, "SHARD_REFRESH_SECONDS", 0.05)
    handled: list[int] = []

    def counting(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        handled.append(len(event["Records"]))
        return {"batchItemFailures": []}

    # Given a shard that has new records on every poll, so the poller never idles
    stream = ShardedStream(["busy"], busy_shard="busy")
    poller = StreamPoller(stream, ARN, counting)
    poller.start()
    try:
        wait_until(lambda: len(handled) >= 1, timeout=5)
        # When a shard appears
        stream.shard_ids.append("split")
        # Then it is found and read from its start
        wait_until(lambda: ("split", "TRIM_HORIZON") in stream.iterator_requests, timeout=5)
    finally:
        poller.stop()


class CountingStream(ScriptedStream):
    """A ScriptedStream that notes each get_records call in ``events``."""

    def __init__(self, records: list[dict[str, Any]], events: list[str]) -> None:
        super().__init__(records)
        self.events = events

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.events.append("poll")
        return super().get_records(ShardIterator, Limit)


class RecordingWake(threading.Event):
    """The poller's wake event, noting each idle wait in ``events``."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def wait(self, timeout: float | None = None) -> bool:
        self.events.append(f"wait {timeout}")
        return super().wait(timeout)


@pytest.mark.parametrize(("count", "waited"), [(3, True), (1000, False)])
def test_after_a_batch_the_shard_is_read_again_at_once_only_if_its_page_was_full(
    count: int, waited: bool
) -> None:
    # Given records in the shard: a few, or GetRecords' full page of 1,000
    events: list[str] = []
    stream = CountingStream([stream_record(n) for n in range(1, count + 1)], events)
    handler = RecordingHandler()
    poller = StreamPoller(stream, ARN, handler, batch_size=1000, max_attempts=1)
    poller._wake = RecordingWake(events)
    # When they have been handed over and the shard read once more
    run_until(poller, lambda: events.count("poll") >= 2)
    # Then after a full page (a backlog may be waiting) it is read again at once; after a
    # partial one, on the next poll, as Lambda polls a shard four times a second
    between = events[events.index("poll") + 1 : events.index("poll", events.index("poll") + 1)]
    assert between == ([f"wait {stream_poller.IDLE_POLL_SECONDS}"] if waited else [])
    assert len(handler.batches) == 1
    assert stream_poller.GET_RECORDS_LIMIT == 1000


def site_record(sequence_number: int, site: str) -> dict[str, Any]:
    """A record of a message of ``site`` (the messages table's partition key)."""
    record = stream_record(sequence_number)
    record["dynamodb"]["Keys"]["site"] = {"S": site}
    record["dynamodb"]["NewImage"]["site"] = {"S": site}
    return record


def test_with_a_parallelization_factor_sites_go_at_once_and_each_keeps_its_order() -> None:
    # Given records of two sites interleaved in one shard, and a handler that holds site
    # "slow" until a record of "fast" has been handled
    records = [site_record(n, "slow" if n % 2 else "fast") for n in range(1, 9)]
    handled: list[tuple[str, int]] = []
    fast_seen = threading.Event()

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        for record in event["Records"]:
            site = record["dynamodb"]["Keys"]["site"]["S"]
            if site == "slow":
                fast_seen.wait(5)
            else:
                fast_seen.set()
            handled.append((site, int(record["dynamodb"]["SequenceNumber"])))
        return {"batchItemFailures": []}

    poller = StreamPoller(
        ScriptedStream(records),
        ARN,
        handler,
        batch_size=1,
        max_attempts=1,
        parallelization_factor=10,
        partition_key="site",
    )
    run_until(poller, lambda: len(handled) == len(records))
    # Then "fast" was not held up behind "slow" (lanes run at once), and within each site the
    # records were handled in stream order
    assert handled[0][0] == "fast"
    for site in ("slow", "fast"):
        numbers = [n for s, n in handled if s == site]
        assert numbers == sorted(numbers)
        assert len(numbers) == 4


def test_without_a_parallelization_factor_records_are_handled_in_stream_order() -> None:
    records = [site_record(n, f"site-{n % 3}") for n in range(1, 10)]
    handler = RecordingHandler()
    poller = StreamPoller(ScriptedStream(records), ARN, handler, batch_size=2, max_attempts=1)
    run_until(poller, lambda: sum(len(b) for b in handler.batches) == len(records))
    assert [n for b in handler.batches for n in sequence_numbers(b)] == list(range(1, 10))
