"""A discrete-event model of the deployed broadcast path, run in virtual time (B5).

The broadcast code itself is the project's: ``userstatus.broadcast.broadcast_batch`` decides
what each stream batch posts and when a big site is split, ``userstatus.chunk_invoker`` invokes
the fan-out function for the further chunks and ``userstatus.fanout.post_chunk`` posts one
chunk, each under ``userstatus.deadline.within_time`` with a context that tells the
function's remaining time. Their calls out of the function (the connections query, the
management API posts, the Lambda Invoke) are served by the models here, which cost virtual
time instead of real time, so 10,000 posts a second for a minute run on one core in seconds.

Every piece of real code runs in a greenlet; a blocking call of a model (a query, a post, an
invocation) switches back to the event loop, which advances the virtual clock to the next
event. The modules' ``time`` is replaced by the virtual clock while a simulation runs.

What is modelled, with the figures it takes (``Model``), and where each comes from:

* the management API: answers after ``post_round_trip`` seconds, and enforces API Gateway's
  account-wide token bucket (``account_rate`` a second, ``account_burst`` at once,
  docs.aws.amazon.com/apigateway/latest/developerguide/limits.html), answering 429 beyond it;
  a 429 costs no token;
* the poster: ``concurrency`` posts in flight per container, each costing
  ``post_cpu_seconds`` of one full core (measured: B1 (b)), on the container's share of a
  vCPU (memory / 1,769 MB, docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html);
  429s retried with the real ``management_api.retry_delay`` and ``MAX_THROTTLED_SECONDS``; posts
  still unanswered at the caller's deadline count as failed, as in the real poster;
* the connections query: DynamoDB pages of 1 MB, ``query_page_seconds`` each, plus
  ``parse_cpu_seconds_per_item`` of CPU to turn each row into a ``Connection``;
* Lambda: a warm invocation adds ``invoke_overhead``; a new execution environment adds
  ``cold_start`` first; a container runs one invocation at a time; each invocation is billed
  in 1 ms steps at the function's memory;
* the event source mapping: polls the stream ``stream_polls_per_second`` times a second (4,
  docs.aws.amazon.com/lambda/latest/dg/with-ddb.html), hands each record to one of
  ``ParallelizationFactor`` lanes by its partition key (the site), so each site's records stay
  in order, and invokes a lane with up to ``BatchSize`` records as soon as its previous batch
  returned; records reported in ``batchItemFailures`` are retried ``MaximumRetryAttempts``
  times, then counted lost.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import math
import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from greenlet import getcurrent, greenlet  # type: ignore[import-untyped]

from userstatus import broadcast, chunk_invoker, deadline, fanout, management_api
from userstatus.chunk_invoker import ChunkInvoker
from userstatus.management_api import FanoutResult
from userstatus.store import Connection

MB_PER_VCPU = 1769
QUERY_PAGE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Model:
    """The figures the models take (seconds unless named otherwise)."""

    post_round_trip: float = 0.010
    account_rate: float = 10_000.0
    account_burst: float = 5_000.0
    post_cpu_seconds: float = 80e-6
    query_page_seconds: float = 0.010
    parse_cpu_seconds_per_item: float = 15e-6
    connection_row_bytes: int = 110
    invoke_overhead: float = 0.015
    cold_start: float = 0.5
    stream_polls_per_second: float = 4.0


class Simulator:
    """Virtual time, a queue of events and the greenlets of the code under test."""

    def __init__(self, seed: int = 1) -> None:
        self.now = 0.0
        self.random = random.Random(seed)
        # The code under simulation draws its jitter from the module's generator.
        random.seed(seed)
        self._events: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()
        self._hub = getcurrent()
        self.failures: list[BaseException] = []

    def at(self, when: float, action: Callable[[], object]) -> None:
        """Run ``action`` at virtual time ``when`` (not before now)."""
        heapq.heappush(self._events, (max(when, self.now), next(self._order), action))

    def spawn(self, action: Callable[[], object]) -> None:
        """Run ``action`` in a greenlet of its own, starting now."""

        def body() -> None:
            try:
                action()
            except BaseException as error:  # noqa: BLE001 - reported by run()
                self.failures.append(error)

        self.at(self.now, greenlet(body, parent=self._hub).switch)

    def sleep(self, seconds: float) -> None:
        """Block the calling greenlet for ``seconds`` of virtual time."""
        self.at(self.now + max(0.0, seconds), getcurrent().switch)
        self._hub.switch()

    def block(self) -> Callable[[], None]:
        """Park the calling greenlet; call the returned function (once) to resume it."""
        current = getcurrent()
        return lambda: self.at(self.now, current.switch)

    def run(self, until: float | None = None) -> None:
        """Process events in time order until none is left (or ``until``)."""
        while self._events:
            when, _, action = self._events[0]
            if until is not None and when > until:
                break
            heapq.heappop(self._events)
            self.now = when
            action()
            if self.failures:
                raise RuntimeError("code under simulation failed") from self.failures[0]


class Signal:
    """Set once; greenlets waiting for it resume when it is."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self.is_set = False
        self._waiters: list[Callable[[], None]] = []

    def set(self) -> None:
        self.is_set = True
        waiters, self._waiters = self._waiters, []
        for resume in waiters:
            resume()

    def wait(self) -> None:
        if not self.is_set:
            self._waiters.append(self._sim.block())
            self._sim._hub.switch()


class VirtualTime:
    """Stands in for the ``time`` module of the code under simulation."""

    def __init__(self, sim: Simulator, epoch: float = 1_800_000_000.0) -> None:
        self._sim = sim
        self._epoch = epoch

    def monotonic(self) -> float:
        return self._sim.now

    perf_counter = monotonic

    def time(self) -> float:
        return self._epoch + self._sim.now

    def sleep(self, seconds: float) -> None:
        self._sim.sleep(seconds)


_TIMED_MODULES = (broadcast, chunk_invoker, deadline, fanout)


@contextmanager
def virtual_time(sim: Simulator) -> Iterator[VirtualTime]:
    """Give the broadcast modules the simulator's clock while the block runs."""
    clock = VirtualTime(sim)
    saved = [vars(module)["time"] for module in _TIMED_MODULES]
    for module in _TIMED_MODULES:
        setattr(module, "time", clock)  # noqa: B010 - the module's own name for time
    try:
        yield clock
    finally:
        for module, original in zip(_TIMED_MODULES, saved, strict=True):
            setattr(module, "time", original)  # noqa: B010


class Account:
    """API Gateway's account-wide token bucket for the management API."""

    def __init__(self, sim: Simulator, model: Model) -> None:
        self._sim = sim
        self._rate = model.account_rate
        self._burst = model.account_burst
        self._tokens = model.account_burst
        self._last = 0.0
        self.throttled = 0
        self.accepted = 0

    def take(self) -> bool:
        """Whether a request arriving now is accepted (429 otherwise)."""
        now = self._sim.now
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.accepted += 1
            return True
        self.throttled += 1
        return False


class Container:
    """One Lambda execution environment: its share of a vCPU, busy with one invocation."""

    def __init__(self, sim: Simulator, memory_mb: int) -> None:
        self._sim = sim
        self.vcpu = min(1.0, memory_mb / MB_PER_VCPU)
        self._cpu_free_at = 0.0
        # The function's handler as this container initialised it (its own runtime).
        self.handler: Callable[[Any, Any], Any] | None = None

    def cpu(self, full_core_seconds: float) -> float:
        """Reserve CPU for work of ``full_core_seconds`` on one full core; when it is done."""
        start = max(self._sim.now, self._cpu_free_at)
        self._cpu_free_at = start + full_core_seconds / self.vcpu
        return self._cpu_free_at


class ManagementApi:
    """The fake management API: 10 ms answers, the account's bucket, a log of deliveries."""

    def __init__(self, sim: Simulator, model: Model, on_delivery: Callable[[str, bytes], None]):
        self.account = Account(sim, model)
        self.round_trip = model.post_round_trip
        self._on_delivery = on_delivery

    def answer(self, connection_id: str, payload: bytes) -> int:
        """The status for a request arriving now (delivery is recorded when it is answered)."""
        return 200 if self.account.take() else 429

    def delivered(self, connection_id: str, payload: bytes) -> None:
        self._on_delivery(connection_id, payload)


class ModelPoster:
    """``ConnectionPoster.post_to_all`` as a model: concurrency, CPU, 429 retries, deadline."""

    def __init__(
        self,
        sim: Simulator,
        model: Model,
        container: Container,
        api: ManagementApi,
        concurrency: int,
    ) -> None:
        self._sim = sim
        self._model = model
        self._container = container
        self._api = api
        self._concurrency = concurrency

    def post_to_all(
        self, connection_ids: Sequence[str], payload: bytes, *, deadline: float | None = None
    ) -> FanoutResult:
        ids = deque(connection_ids)
        result = FanoutResult()
        if not ids:
            return result
        sim = self._sim
        done = Signal(sim)
        workers = min(self._concurrency, len(ids))
        running = [workers]

        def finish_worker() -> None:
            running[0] -= 1
            if running[0] == 0:
                done.set()

        def next_post() -> None:
            if not ids:
                finish_worker()
                return
            attempt(ids.popleft(), 0, None)

        def attempt(connection_id: str, throttled: int, give_up_at: float | None) -> None:
            sent_at = self._container.cpu(self._model.post_cpu_seconds)
            if deadline is not None and sent_at >= deadline:
                result.failed.append(connection_id)
                sim.at(deadline, next_post)
                return
            sim.at(sent_at, lambda: arrive(connection_id, throttled, give_up_at))

        def arrive(connection_id: str, throttled: int, give_up_at: float | None) -> None:
            status = self._api.answer(connection_id, payload)
            answered_at = sim.now + self._api.round_trip
            if deadline is not None and answered_at > deadline:
                # The real poster's asyncio.timeout_at: unanswered at the deadline, failed.
                result.failed.append(connection_id)
                sim.at(deadline, next_post)
                return
            sim.at(answered_at, lambda: answered(connection_id, status, throttled, give_up_at))

        def answered(
            connection_id: str, status: int, throttled: int, give_up_at: float | None
        ) -> None:
            if status == 200:
                result.delivered += 1
                self._api.delivered(connection_id, payload)
                next_post()
                return
            result.throttled += 1
            throttled += 1
            give_up_at = give_up_at or sim.now + management_api.MAX_THROTTLED_SECONDS
            if sim.now >= give_up_at:
                result.failed.append(connection_id)
                next_post()
                return
            wait = management_api.retry_delay(throttled, throttled=True)
            sim.at(sim.now + wait, lambda: attempt(connection_id, throttled, give_up_at))

        for _ in range(workers):
            sim.at(sim.now, next_post)
        done.wait()
        return result


class ModelConnections:
    """``ConnectionStore.connections`` as a model: 1 MB query pages and parsing CPU."""

    def __init__(
        self,
        sim: Simulator,
        model: Model,
        container: Container,
        connections_of: Callable[[str], list[Connection]],
    ) -> None:
        self._sim = sim
        self._model = model
        self._container = container
        self._connections_of = connections_of
        self.items_read = 0

    def connections(self, site: str, *, now: float) -> list[Connection]:
        found = self._connections_of(site)
        per_page = max(1, QUERY_PAGE_BYTES // self._model.connection_row_bytes)
        for start in range(0, max(1, len(found)), per_page):
            items = len(found[start : start + per_page])
            self._sim.sleep(self._model.query_page_seconds)
            done_at = self._container.cpu(items * self._model.parse_cpu_seconds_per_item)
            self._sim.sleep(done_at - self._sim.now)
            self.items_read += items
        return list(found)


class _Context:
    """A Lambda context that tells the remaining time in virtual time."""

    def __init__(self, sim: Simulator, timeout: float) -> None:
        self._sim = sim
        self._ends_at = sim.now + timeout
        self.aws_request_id = "simulated"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._ends_at - self._sim.now) * 1000))


@dataclass
class FunctionStats:
    """What one function cost."""

    invocations: int = 0
    cold_starts: int = 0
    billed_gb_seconds: float = 0.0


class Function:
    """A Lambda function: containers reused one invocation at a time, billed per 1 ms."""

    def __init__(
        self,
        sim: Simulator,
        model: Model,
        memory_mb: int,
        timeout: float,
        handler_for: Callable[[Container], Callable[[Any, Any], Any]],
    ) -> None:
        self._sim = sim
        self._model = model
        self.memory_mb = memory_mb
        self.timeout = timeout
        self._handler_for = handler_for
        self._idle: list[Container] = []
        self.stats = FunctionStats()

    def invoke(self, event: Mapping[str, Any]) -> Any:
        """Run one invocation from the calling greenlet; the handler's answer, or raise
        ``chunk_invoker.FanoutError`` for a function error (as Lambda's answer says)."""
        sim = self._sim
        if self._idle:
            container = self._idle.pop()
        else:
            container = Container(sim, self.memory_mb)
            container.handler = self._handler_for(container)
            self.stats.cold_starts += 1
            sim.sleep(self._model.cold_start)
        sim.sleep(self._model.invoke_overhead)
        started = sim.now
        # The payload crosses Lambda as JSON, both ways.
        payload = json.loads(json.dumps(event))
        assert container.handler is not None
        try:
            answer = container.handler(payload, _Context(sim, self.timeout))
            answer = json.loads(json.dumps(answer))
            error = None if sim.now - started <= self.timeout else "Task timed out"
        except Exception as raised:  # noqa: BLE001 - Lambda's function error
            answer, error = None, f"Unhandled: {raised!r}"
        billed_ms = max(1, math.ceil((sim.now - started) * 1000))
        self.stats.invocations += 1
        self.stats.billed_gb_seconds += billed_ms / 1000 * self.memory_mb / 1024
        self._idle.append(container)
        if error is not None:
            raise chunk_invoker.FanoutError(error)
        return answer


class SimulatedFuture(Future[Any]):
    """A future whose ``result()`` waits in virtual time."""

    def __init__(self, sim: Simulator) -> None:
        super().__init__()
        self._signal = Signal(sim)
        self.add_done_callback(lambda _: self._signal.set())

    def result(self, timeout: float | None = None) -> Any:
        self._signal.wait()
        return super().result(0)


class SimulatedPool:
    """The ``ThreadPoolExecutor`` of ``ChunkInvoker``: at most ``max_workers`` at once."""

    def __init__(self, sim: Simulator, max_workers: int) -> None:
        self._sim = sim
        self._free = max_workers
        self._queued: deque[Callable[[], None]] = deque()

    def submit(self, action: Callable[..., Any], *args: Any) -> Future[Any]:
        future = SimulatedFuture(self._sim)

        def run() -> None:
            try:
                future.set_result(action(*args))
            except Exception as error:  # noqa: BLE001 - handed to the future
                future.set_exception(error)
            finally:
                self._free += 1
                if self._queued:
                    self._free -= 1
                    self._sim.spawn(self._queued.popleft())

        if self._free > 0:
            self._free -= 1
            self._sim.spawn(run)
        else:
            self._queued.append(run)
        return future


class SimulatedChunkInvoker(ChunkInvoker):
    """The real ``ChunkInvoker`` (splitting, deadlines, merging), on the simulated pool."""

    def __init__(self, sim: Simulator, invoke: chunk_invoker.Invoke) -> None:
        super().__init__(invoke)
        self._simulated_pool = SimulatedPool(sim, self._max_parallel)

    def _executor(self) -> Any:
        return self._simulated_pool


@dataclass
class Record:
    """A message's stream record, its partition key (the site) and its attempts so far."""

    site: str
    record: dict[str, Any]
    attempts: int = 0


class EventSourceMapping:
    """The stream event source mapping: polling, lanes by partition key, batches, retries."""

    def __init__(
        self,
        sim: Simulator,
        model: Model,
        function: Function,
        *,
        batch_size: int,
        parallelization_factor: int,
        retry_attempts: int,
    ) -> None:
        self._sim = sim
        self._function = function
        self._batch_size = batch_size
        self._retry_attempts = retry_attempts
        self._interval = 1.0 / model.stream_polls_per_second
        self._stream: list[Record] = []
        self._read = 0
        self._lanes: list[deque[Record]] = [deque() for _ in range(parallelization_factor)]
        self._busy = [False] * parallelization_factor
        self._stopped = False

    def put(self, record: Record) -> None:
        """A record arrives in the stream."""
        self._stream.append(record)

    def start(self) -> None:
        """Poll from a random phase on, until ``stop``."""
        self._sim.at(self._sim.random.random() * self._interval, self._poll)

    def stop(self) -> None:
        self._stopped = True

    def _lane_of(self, site: str) -> int:
        digest = hashlib.md5(site.encode(), usedforsecurity=False).digest()
        return int.from_bytes(digest[:4], "big") % len(self._lanes)

    def _poll(self) -> None:
        for record in self._stream[self._read :]:
            self._lanes[self._lane_of(record.site)].append(record)
        self._read = len(self._stream)
        for lane in range(len(self._lanes)):
            self._dispatch(lane)
        if not self._stopped:
            self._sim.at(self._sim.now + self._interval, self._poll)

    def _dispatch(self, lane: int) -> None:
        queue = self._lanes[lane]
        if self._busy[lane] or not queue:
            return
        batch = [queue.popleft() for _ in range(min(self._batch_size, len(queue)))]
        self._busy[lane] = True
        self._sim.spawn(lambda: self._invoke(lane, batch))

    def _invoke(self, lane: int, batch: list[Record]) -> None:
        for record in batch:
            record.attempts += 1
        try:
            answer = self._function.invoke({"Records": [r.record for r in batch]})
            failed_ids = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        except chunk_invoker.FanoutError:
            failed_ids = {r.record["dynamodb"]["SequenceNumber"] for r in batch}
        retry = [r for r in batch if r.record["dynamodb"]["SequenceNumber"] in failed_ids]
        for record in reversed(retry):
            # Past its retries a record is dropped (to the failure queue in AWS): its viewers'
            # deliveries never come, and B5 counts them lost.
            if record.attempts <= self._retry_attempts:
                self._lanes[lane].appendleft(record)
        self._busy[lane] = False
        self._dispatch(lane)
