"""Feeds the messages table's stream to the broadcaster like Lambda's event source mapping.

A thread reads every shard of the stream (shards open at start from LATEST, shards found later
from TRIM_HORIZON), hands new records to the handler in batches of at most ``batch_size`` in
the Lambda event shape, and behaves as the stack's event source mapping is configured
(``userstatus_stack/broadcaster.py``, from the same stage settings):

* the partial-failure answer (``batchItemFailures``) is honoured: the batch is retried from the
  lowest failed sequence number;
* a function error (the handler raised) splits the batch in two, each half retried on its own
  (``BisectBatchOnFunctionError``), with what is left of the attempts;
* a batch is tried at most ``max_attempts`` times in all (``MaximumRetryAttempts`` + 1);
* with a ``parallelization_factor`` over 1 (``ParallelizationFactor``), a shard's records go
  to that many lanes by their partition key, each lane batched and retried on its own and all
  lanes handed over at once, so one site's messages keep their order while sites go in
  parallel;
* records older than ``max_record_age_seconds`` when their turn comes are not handed over
  (``MaximumRecordAgeInSeconds``);
* records given up on either way are described to ``on_failure`` in the shape Lambda sends to
  the on-failure destination (the SQS failure queue): ``requestContext.condition``
  ``RetryAttemptsExhausted`` or ``RecordAgeExceeded`` and ``DDBStreamBatchInfo`` (shard,
  first and last sequence numbers, batch size), then skipped.

The relay wakes it after each route that stores a message, so those are polled at once;
otherwise it polls every ``IDLE_POLL_SECONDS`` (0.25 s: Lambda polls each shard of a DynamoDB
stream four times a second, docs.aws.amazon.com/lambda/latest/dg/with-ddb.html), so writes
that bypass the relay's routes are seen within that, and at once again after a full page (a
backlog). New shards are looked for every ``SHARD_REFRESH_SECONDS``, busy or idle. After an
error every shard is reopened after its last handled record, or with its starting iterator
type if none was handled yet.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from userstatus_local.events import LAMBDA_TIMEOUT_SECONDS, LambdaContext, stream_record

logger = logging.getLogger("userstatus_local.stream")

BatchHandler = Callable[[Mapping[str, Any], object], Any]
FailureSink = Callable[[dict[str, Any]], None]

IDLE_POLL_SECONDS = 0.25
# GetRecords' own maximum: "The maximum number of records to return from the shard. The upper
# limit is 1000." (docs.aws.amazon.com/amazondynamodb/latest/APIReference/
# API_streams_GetRecords.html)
GET_RECORDS_LIMIT = 1000
SHARD_REFRESH_SECONDS = 5.0
ERROR_BACKOFF_SECONDS = 1.0


class StreamPoller:
    """Polls one DynamoDB stream and invokes ``handler`` with its records."""

    def __init__(
        self,
        streams_client: Any,
        stream_arn: str,
        handler: BatchHandler,
        *,
        function_name: str = "userstatus-local-broadcast",
        batch_size: int = 100,
        max_attempts: int = 3,
        timeout_seconds: float = LAMBDA_TIMEOUT_SECONDS,
        memory_mb: int = 512,
        bisect_on_error: bool = True,
        max_record_age_seconds: float | None = None,
        on_failure: FailureSink | None = None,
        parallelization_factor: int = 1,
        partition_key: str | None = None,
    ) -> None:
        self._lanes = parallelization_factor if partition_key is not None else 1
        self._partition_key = partition_key
        self._lane_pool = (
            ThreadPoolExecutor(self._lanes, thread_name_prefix="stream-lane")
            if self._lanes > 1
            else None
        )
        self._timeout = timeout_seconds
        self._memory_mb = memory_mb
        self._bisect = bisect_on_error
        self._max_record_age = max_record_age_seconds
        self._on_failure = on_failure
        self._client = streams_client
        self._arn = stream_arn
        self._handler = handler
        self._function_name = function_name
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-poller", daemon=True)
        self._iterators: dict[str, str] = {}
        self._last_sequence: dict[str, str] = {}
        self._starting_type: dict[str, str] = {}
        self._known_shards: set[str] = set()

    def start(self) -> None:
        """Position at the end of every open shard, then poll in a thread."""
        self._refresh_shards(initial=True)
        self._thread.start()

    def wake(self) -> None:
        """Poll now: a route that writes messages has just stored one."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and wait for the current batch to finish."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._lane_pool is not None:
            self._lane_pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        refreshed_at = time.monotonic()
        while not self._stop.is_set():
            try:
                backlog = self._poll_once()
                if time.monotonic() - refreshed_at >= SHARD_REFRESH_SECONDS:
                    self._refresh_shards(initial=False)
                    refreshed_at = time.monotonic()
            except Exception:
                logger.exception("stream poll failed; retrying")
                self._stop.wait(ERROR_BACKOFF_SECONDS)
                self._reposition_all()
                continue
            # A wake during the poll (a message stored meanwhile) ends the wait at once.
            if not backlog:
                self._wake.wait(IDLE_POLL_SECONDS)
            self._wake.clear()

    def _poll_once(self) -> bool:
        """Read every shard once and deliver what came; whether a shard gave a full page (more
        may be waiting: read again at once, as the event source mapping drains a backlog)."""
        backlog = False
        for shard_id, iterator in list(self._iterators.items()):
            answer = self._client.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
            records = answer.get("Records") or []
            next_iterator = answer.get("NextShardIterator")
            if next_iterator:
                self._iterators[shard_id] = next_iterator
            else:
                del self._iterators[shard_id]
            if records:
                backlog = backlog or len(records) >= GET_RECORDS_LIMIT
                self._deliver([stream_record(r, self._arn) for r in records], shard_id)
                self._last_sequence[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
        return backlog

    def _deliver(self, records: Sequence[dict[str, Any]], shard_id: str) -> None:
        """Hand ``records`` over in batches: with a parallelization factor over 1, in as many
        lanes at once, each holding every record of its partition keys in stream order (so a
        site's messages stay in order), as the event source mapping's concurrent batches per
        shard do; the shard is read again once every lane is done."""
        if self._lane_pool is None:
            self._deliver_lane(records, shard_id)
            return
        lanes: dict[int, list[dict[str, Any]]] = {}
        for record in records:
            lanes.setdefault(self._lane_of(record), []).append(record)
        running = [
            self._lane_pool.submit(self._deliver_lane, lane, shard_id) for lane in lanes.values()
        ]
        for lane in running:
            lane.result()

    def _lane_of(self, record: Mapping[str, Any]) -> int:
        key = record.get("dynamodb", {}).get("Keys", {}).get(self._partition_key)
        return zlib.crc32(json.dumps(key, sort_keys=True).encode()) % self._lanes

    def _deliver_lane(self, records: Sequence[dict[str, Any]], shard_id: str) -> None:
        for start in range(0, len(records), self._batch_size):
            batch = self._young_enough(list(records[start : start + self._batch_size]), shard_id)
            if batch:
                self._invoke_with_retries(batch, shard_id, self._max_attempts)

    def _young_enough(self, batch: list[dict[str, Any]], shard_id: str) -> list[dict[str, Any]]:
        """The records of ``batch`` not past the maximum record age; the others discarded."""
        if self._max_record_age is None:
            return batch
        oldest_allowed = time.time() - self._max_record_age
        old = [r for r in batch if _created_at(r) < oldest_allowed]
        if old:
            self._discard(old, shard_id, "RecordAgeExceeded", attempts=0)
        return [r for r in batch if _created_at(r) >= oldest_allowed]

    def _invoke_with_retries(
        self, batch: list[dict[str, Any]], shard_id: str, attempts_left: int
    ) -> None:
        attempt = 0
        while attempts_left > 0:
            attempt += 1
            attempts_left -= 1
            try:
                context = LambdaContext(
                    self._function_name,
                    timeout_seconds=self._timeout,
                    memory_limit_in_mb=self._memory_mb,
                )
                answer = self._handler({"Records": batch}, context)
                failed = _failed_sequence_numbers(answer)
            except Exception:
                logger.exception("broadcast handler raised", extra={"attempt": attempt})
                if self._bisect and len(batch) > 1 and attempts_left > 0:
                    # A function error: each half is retried on its own.
                    middle = len(batch) // 2
                    logger.warning(
                        "function error; retrying the batch in two halves",
                        extra={"records": len(batch)},
                    )
                    self._invoke_with_retries(batch[:middle], shard_id, attempts_left)
                    self._invoke_with_retries(batch[middle:], shard_id, attempts_left)
                    return
                failed = [_sequence_number(batch[0])]
            if not failed:
                return
            lowest = min(failed, key=_sequence_key)
            batch = [
                r for r in batch if _sequence_key(_sequence_number(r)) >= _sequence_key(lowest)
            ]
            if not batch:
                return
            if attempts_left > 0:
                logger.warning(
                    "batch item failures; retrying from the lowest",
                    extra={"attempt": attempt, "records_retried": len(batch)},
                )
        self._discard(batch, shard_id, "RetryAttemptsExhausted", attempts=attempt)

    def _discard(
        self, batch: list[dict[str, Any]], shard_id: str, condition: str, *, attempts: int
    ) -> None:
        """Give up on ``batch``: describe it to the failure destination, as Lambda does."""
        failure = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:local:000000000000:function:{self._function_name}",
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": _sequence_number(batch[0]),
                "endSequenceNumber": _sequence_number(batch[-1]),
                "approximateArrivalOfFirstRecord": _iso(_created_at(batch[0])),
                "approximateArrivalOfLastRecord": _iso(_created_at(batch[-1])),
                "batchSize": len(batch),
                "streamArn": self._arn,
            },
        }
        logger.error(
            "records sent to the failure queue",
            extra={
                "condition": condition,
                "attempts": attempts,
                "sequence_numbers": [_sequence_number(r) for r in batch],
            },
        )
        if self._on_failure is not None:
            try:
                self._on_failure(failure)
            except Exception:
                logger.exception("could not write to the failure queue")

    def _refresh_shards(self, *, initial: bool) -> None:
        description = self._client.describe_stream(StreamArn=self._arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id in self._known_shards:
                continue
            self._known_shards.add(shard_id)
            closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
            if initial and closed:
                continue
            starting_type = "LATEST" if initial else "TRIM_HORIZON"
            self._starting_type[shard_id] = starting_type
            self._iterators[shard_id] = self._iterator(shard_id, starting_type)

    def _reposition_all(self) -> None:
        """After an error (an expired iterator, say), resume after the last record handled."""
        try:
            for shard_id in list(self._iterators):
                last = self._last_sequence.get(shard_id)
                if last is None:
                    self._iterators[shard_id] = self._iterator(
                        shard_id, self._starting_type[shard_id]
                    )
                else:
                    self._iterators[shard_id] = self._iterator(
                        shard_id, "AFTER_SEQUENCE_NUMBER", last
                    )
        except Exception:
            logger.exception("could not reposition on the stream")

    def _iterator(self, shard_id: str, kind: str, sequence_number: str | None = None) -> str:
        request = {"StreamArn": self._arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if sequence_number is not None:
            request["SequenceNumber"] = sequence_number
        return str(self._client.get_shard_iterator(**request)["ShardIterator"])


def _failed_sequence_numbers(answer: object) -> list[str]:
    if not isinstance(answer, Mapping):
        return []
    failures = answer.get("batchItemFailures") or []
    return [str(f.get("itemIdentifier", "")) for f in failures if isinstance(f, Mapping)]


def _created_at(record: Mapping[str, Any]) -> float:
    created = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
    return float(created) if isinstance(created, int | float) else time.time()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sequence_number(record: Mapping[str, Any]) -> str:
    return str(record.get("dynamodb", {}).get("SequenceNumber", ""))


def _sequence_key(sequence_number: str) -> tuple[int, str]:
    return (int(sequence_number), "") if sequence_number.isdigit() else (0, sequence_number)
