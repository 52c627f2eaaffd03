"""B5 scale: a hot site of 10,000 viewers and 100 busy sites, within API Gateway's account limit.

The deployed path, simulated in virtual time (``bench.simulation``): the stream event source
mapping with the prod stage's settings feeds the project's own broadcast code, which posts to
a fake management API that answers after 10 ms and enforces API Gateway's account-wide token
bucket (10,000 requests a second, burst 5,000, 429 beyond). Ten thousand posts a second cost
more CPU than this machine has (B1: about 80 µs per post for the poster alone), so the posts,
queries and invocations are models that cost virtual time; what they cost on this machine is
measured first and fed to the models.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from botocore.credentials import ReadOnlyCredentials
from botocore.parsers import create_parser
from botocore.session import get_session

from bench import cost_model
from bench.common import FakeManagementApiProcess, bench_main, measure, median_timing, percentile
from bench.report import BenchResult, Goal, Table
from bench.simulation import (
    Container,
    EventSourceMapping,
    Function,
    ManagementApi,
    Model,
    ModelConnections,
    ModelPoster,
    Record,
    SimulatedChunkInvoker,
    Simulator,
    virtual_time,
)
from userstatus import broadcast, deadline, fanout, keys
from userstatus.config import Settings
from userstatus.management_api import ConnectionPoster
from userstatus.model import validate_message
from userstatus.store import Connection, ConnectionStore, MessageStore
from userstatus_stack.stages import STAGES

STAGE = STAGES["prod"]
P99_GOAL_SECONDS = 1.0
FANOUT_FUNCTION = "fanout"
EPOCH = 1_800_000_000.0
# Each site posts one message first, which starts the functions' containers (cold starts) and
# is reported apart; the workload starts this much later, with the account's bucket full again.
WARM_UP_SECONDS = 5.0


@dataclass(frozen=True)
class Workload:
    """Sites of equal size, each posting at the same rate, for ``seconds``."""

    name: str
    sites: int
    viewers_per_site: int
    messages_per_second: float
    seconds: float

    @property
    def label(self) -> str:
        return (
            f"{self.name}: {self.sites:,} site(s) x {self.viewers_per_site:,} viewers, "
            f"{self.messages_per_second:.4g} messages/s for {self.seconds:g} s"
        )


@dataclass
class Outcome:
    """What one simulated workload measured."""

    workload: Workload
    expected: int = 0
    latencies: list[float] = field(default_factory=list)
    warm_up_latencies: list[float] = field(default_factory=list)
    duplicates: int = 0
    out_of_order: int = 0
    throttled: int = 0
    broadcast_invocations: int = 0
    fanout_invocations: int = 0
    cold_starts: int = 0
    gb_seconds: float = 0.0
    items_read: int = 0
    wall_seconds: float = 0.0

    @property
    def delivered(self) -> int:
        return len(self.latencies)

    @property
    def lost(self) -> int:
        return self.expected - (self.delivered - self.duplicates)

    def per_million(self, value: float) -> float:
        return value / self.delivered * 1e6 if self.delivered else math.nan

    def lambda_cost_per_million(self) -> float:
        """USD per million deliveries: invocations and GB-seconds (arm64)."""
        invocations = self.broadcast_invocations + self.fanout_invocations
        return self.per_million(
            invocations * cost_model.LAMBDA_REQUEST
            + self.gb_seconds * cost_model.LAMBDA_GB_SECOND_ARM
        )

    def cost_per_million(self) -> float:
        """USD per million deliveries: Lambda, the posts (WebSocket messages), the query."""
        query_bytes = self.items_read * Model().connection_row_bytes
        return self.lambda_cost_per_million() + self.per_million(
            self.delivered * cost_model.WEBSOCKET_MESSAGE
            + cost_model.rru(query_bytes) * cost_model.DYNAMODB_RRU
        )


def connection_ids(site: int, count: int) -> list[str]:
    """API Gateway-like 16-character connection ids."""
    return [f"s{site:03d}c{index:011d}" for index in range(count)]


def simulate(workload: Workload, model: Model, seed: int = 7) -> Outcome:
    """Run ``workload`` through the event source mapping, broadcaster and fan-out function."""
    started = time.perf_counter()
    sim = Simulator(seed)
    outcome = Outcome(workload)
    sites = [f"site{index:03d}" for index in range(workload.sites)]
    connections = {
        site: [Connection(i, 0) for i in connection_ids(index, workload.viewers_per_site)]
        for index, site in enumerate(sites)
    }
    arrived_at: dict[int, float] = {}
    sequence_of: dict[bytes, int] = {}
    last_seen: dict[str, int] = {}

    warm_up: set[int] = set()

    def on_delivery(connection_id: str, payload: bytes) -> None:
        sequence = sequence_of.get(payload)
        if sequence is None:
            sequence = int(json.loads(payload)["message"].rsplit(" ", 1)[1])
            sequence_of[payload] = sequence
        latency = sim.now - arrived_at[sequence]
        if sequence in warm_up:
            outcome.warm_up_latencies.append(latency)
        else:
            outcome.latencies.append(latency)
        previous = last_seen.get(connection_id, -1)
        if sequence == previous:
            outcome.duplicates += 1
        elif sequence < previous:
            outcome.out_of_order += 1
        last_seen[connection_id] = max(previous, sequence)

    api = ManagementApi(sim, model, on_delivery)
    settings = Settings.from_environ(
        {
            "MESSAGES_TABLE": "messages",
            "CONNECTIONS_TABLE": "connections",
            "WEBSOCKET_MANAGEMENT_ENDPOINT": "https://simulated.example/prod",
            "BROADCAST_CONCURRENCY": str(STAGE.broadcast_concurrency),
            "FANOUT_FUNCTION_NAME": FANOUT_FUNCTION,
            "FANOUT_CHUNK_CONNECTIONS": str(STAGE.fanout_chunk_connections),
        }
    )
    stores: list[ModelConnections] = []

    def runtime_of(container: Container, invoke: Callable[[Any], Any] | None) -> Any:
        """What ``userstatus.runtime.Runtime`` gives the handlers, on the models."""
        store = ModelConnections(sim, model, container, lambda site: connections[site])
        stores.append(store)
        return SimpleNamespace(
            settings=settings,
            connections=store,
            poster=ModelPoster(sim, model, container, api, settings.broadcast_concurrency),
            fanout=None if invoke is None else SimulatedChunkInvoker(sim, invoke),
        )

    def fanout_handler(container: Container) -> Callable[[Any, Any], Any]:
        rt = runtime_of(container, None)
        return deadline.within_time(lambda event, _context: fanout.post_chunk(rt, event))

    fanout_function = Function(
        sim,
        model,
        STAGE.fanout_memory_mb,
        STAGE.broadcast_timeout_seconds,
        fanout_handler,
    )

    def broadcast_handler(container: Container) -> Callable[[Any, Any], Any]:
        rt = runtime_of(container, fanout_function.invoke)
        return deadline.within_time(lambda event, _context: broadcast.broadcast_batch(rt, event))

    broadcast_function = Function(
        sim,
        model,
        STAGE.broadcast_memory_mb,
        STAGE.broadcast_timeout_seconds,
        broadcast_handler,
    )
    mapping = EventSourceMapping(
        sim,
        model,
        broadcast_function,
        batch_size=STAGE.broadcast_batch_size,
        parallelization_factor=STAGE.broadcast_parallelization_factor,
        retry_attempts=STAGE.broadcast_retry_attempts,
    )
    items = MessageStore(None, "messages", 7 * 86400)
    interval = workload.sites / workload.messages_per_second
    sequence = 0

    def schedule(site: str, at: float, counted: bool) -> None:
        nonlocal sequence
        sequence += 1
        message = validate_message(
            {"site": site, "log_message": f"Slewing to target {sequence}"},
            received_at=EPOCH + at,
        )
        record = {
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "NewImage": items.item_of(message, received_at=EPOCH + at),
                "SequenceNumber": str(sequence),
            },
        }
        arrived_at[sequence] = at
        if counted:
            outcome.expected += workload.viewers_per_site
        else:
            warm_up.add(sequence)
        arriving = Record(site, record)
        sim.at(at, lambda: mapping.put(arriving))

    for site in sites:
        first = WARM_UP_SECONDS + sim.random.random() * interval
        schedule(site, sim.random.random() * interval, counted=False)
        for tick in range(int(workload.seconds / interval)):
            schedule(site, first + tick * interval, counted=True)
    mapping.start()
    sim.at(WARM_UP_SECONDS + workload.seconds + 1.0, mapping.stop)
    with virtual_time(sim):
        sim.run()

    outcome.throttled = api.account.throttled
    outcome.broadcast_invocations = broadcast_function.stats.invocations
    outcome.fanout_invocations = fanout_function.stats.invocations
    outcome.cold_starts = broadcast_function.stats.cold_starts + fanout_function.stats.cold_starts
    outcome.gb_seconds = (
        broadcast_function.stats.billed_gb_seconds + fanout_function.stats.billed_gb_seconds
    )
    outcome.items_read = sum(store.items_read for store in stores)
    outcome.wall_seconds = time.perf_counter() - started
    return outcome


def measured_post_cpu(posts: int, runs: int) -> float:
    """CPU seconds per post of the project's ``ConnectionPoster`` against the fake management
    API (B1 (b)): what one post costs a full core."""
    credentials = ReadOnlyCredentials("bench", "bench", None)
    with FakeManagementApiProcess() as fake:
        poster = ConnectionPoster(
            fake.endpoint,
            region="us-east-1",
            credentials=lambda: credentials,
            concurrency=STAGE.broadcast_concurrency,
        )
        ids = connection_ids(0, posts)
        payload = b'{"site":"saf","message":"Slewing","log_level":"info","timestamp":"1"}'
        try:
            poster.post_to_all(ids, payload)  # warm the pool, as a reused container
            timing = median_timing(
                [measure(lambda: poster.post_to_all(ids, payload)) for _ in range(runs)]
            )
        finally:
            poster.close()
    return timing.cpu / posts


def measured_parse_cpu(items: int, runs: int) -> float:
    """CPU seconds per row of ``ConnectionStore.connections``: botocore parsing a Query page
    of the projected rows and the store turning them into ``Connection``s."""
    model = get_session().get_service_model("dynamodb")
    shape = model.operation_model("Query").output_shape
    parser = create_parser("json")
    body = json.dumps(
        {
            "Items": [
                {
                    keys.CONNECTIONS.sort_key.name: {"S": i},
                    "connected_at": {"N": "1800000000"},
                }
                for i in connection_ids(0, items)
            ],
            "Count": items,
            "ScannedCount": items,
        }
    ).encode()

    class ParsingClient:
        def query(self, **_: Any) -> dict[str, Any]:
            page: dict[str, Any] = parser.parse(
                {"body": body, "headers": {}, "status_code": 200}, shape
            )
            return page

    store = ConnectionStore(ParsingClient(), "connections")
    timing = median_timing(
        [measure(lambda: store.connections("saf", now=0.0)) for _ in range(runs)]
    )
    return timing.cpu / items


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _p99(latencies: list[float]) -> float:
    return percentile(latencies, 0.99) if latencies else math.nan


def delivery_row(outcome: Outcome) -> list[str]:
    """One workload's row of the deliveries table."""
    latencies = outcome.latencies or [math.nan]
    invocations = outcome.broadcast_invocations + outcome.fanout_invocations
    lambda_cost = outcome.lambda_cost_per_million()
    return [
        outcome.workload.label,
        f"{outcome.delivered:,}",
        _ms(statistics.median(latencies)),
        _ms(_p99(latencies)),
        _ms(max(latencies)),
        f"{outcome.lost:,}",
        f"{outcome.out_of_order:,}",
        f"{outcome.throttled:,}",
        f"{outcome.broadcast_invocations:,} + {outcome.fanout_invocations:,}",
        f"{outcome.per_million(invocations):,.0f}",
        f"{outcome.per_million(outcome.gb_seconds):,.0f}",
        f"${lambda_cost:.4f}",
        f"${outcome.cost_per_million():.2f}",
        f"{_ms(_p99(outcome.warm_up_latencies))} ({outcome.cold_starts} cold starts)",
        f"{outcome.wall_seconds:.1f} s",
    ]


DELIVERY_HEADERS = [
    "workload",
    "deliveries",
    "p50",
    "p99",
    "max",
    "lost",
    "out of order",
    "429s",
    "invocations (broadcast + fan-out)",
    "invocations / M deliveries",
    "GB-s / M deliveries",
    "Lambda $ / M deliveries",
    "total $ / M deliveries",
    "first message p99 (cold)",
    "simulated in",
]


def capacity_workloads(seconds: float) -> list[Workload]:
    """Around the account's limit: bigger sites at the rate that fills it, and small sites at
    more messages a second than the ESM lanes may carry."""
    return [
        Workload("bigger site", 1, 11_000, 10_000 / 11_000, seconds),
        Workload("bigger site", 1, 15_000, 10_000 / 15_000, seconds),
        Workload("one message at a time", 1, 12_000, 0.25, seconds),
        Workload("one message at a time", 1, 15_000, 0.25, seconds),
        Workload("small sites", 1_000, 10, 400.0, seconds),
        Workload("small sites", 1_000, 10, 1_000.0, seconds),
    ]


def run(quick: bool) -> BenchResult:
    """Calibrate the models on this machine, then simulate both workloads (and, in the full
    run, the workloads around the account's limit)."""
    logging.getLogger("userstatus").setLevel(logging.ERROR)
    seconds = 10.0 if quick else 60.0
    post_cpu = measured_post_cpu(200 if quick else 1000, 3 if quick else 7)
    parse_cpu = measured_parse_cpu(1000 if quick else 10_000, 3 if quick else 7)
    model = replace(Model(), post_cpu_seconds=post_cpu, parse_cpu_seconds_per_item=parse_cpu)
    workloads = [
        Workload("hot site", 1, 10_000, 1.0, seconds),
        Workload("many sites", 100, 100, 100.0, seconds),
    ]
    outcomes = [simulate(workload, model) for workload in workloads]
    capacity = [] if quick else [simulate(w, model) for w in capacity_workloads(30.0)]

    goals = []
    for outcome in outcomes:
        name = outcome.workload.name
        p99 = _p99(outcome.latencies)
        goals += [
            Goal(f"B5 {name}: delivery p99", "<= 1 s", _ms(p99), p99 <= P99_GOAL_SECONDS),
            Goal(f"B5 {name}: messages lost", "0", f"{outcome.lost:,}", outcome.lost == 0),
            Goal(
                f"B5 {name}: deliveries out of order per viewer",
                "0",
                f"{outcome.out_of_order:,}",
                outcome.out_of_order == 0,
            ),
        ]
    model_rows = [
        ["management API answer", _ms(model.post_round_trip), "the issue's fake"],
        [
            "account bucket",
            f"{model.account_rate:,.0f}/s, burst {model.account_burst:,.0f}",
            "API Gateway quota (limits.html)",
        ],
        ["poster CPU per post, full core", f"{post_cpu * 1e6:.0f} µs", "measured here (B1 (b))"],
        [
            "query: per 1 MB page, CPU per row",
            f"{_ms(model.query_page_seconds)}, {parse_cpu * 1e6:.1f} µs",
            "page time assumed; CPU measured here (botocore parse + store)",
        ],
        [
            "functions' vCPU",
            f"broadcast {STAGE.broadcast_memory_mb} MB = "
            f"{min(1, STAGE.broadcast_memory_mb / 1769):.2f}, fan-out "
            f"{STAGE.fanout_memory_mb} MB = {min(1, STAGE.fanout_memory_mb / 1769):.2f}",
            "memory / 1,769 MB (Lambda docs)",
        ],
        [
            "invocation overhead, cold start",
            f"{_ms(model.invoke_overhead)}, {_ms(model.cold_start)}",
            "assumed",
        ],
        [
            "event source mapping",
            f"4 polls/s, batch {STAGE.broadcast_batch_size}, "
            f"ParallelizationFactor {STAGE.broadcast_parallelization_factor}, "
            f"chunk {STAGE.fanout_chunk_connections:,} connections, one shard",
            "prod stage settings",
        ],
    ]
    tables = [
        Table(
            title="Deliveries (virtual time; latency from the record's arrival in the stream "
            "to the post's 200)",
            headers=DELIVERY_HEADERS,
            rows=[delivery_row(outcome) for outcome in outcomes],
            note="Each site posts one message first, 5 s before the workload: it starts the "
            "containers (its p99 is the last column) and is not counted in the others. Lambda "
            "$: requests and arm64 GB-seconds; total $ adds the WebSocket messages ($1 per "
            "million) and the connections query's read units (bench/cost_model.py's prices).",
        ),
        Table(title="The models' figures", headers=["what", "value", "source"], rows=model_rows),
    ]
    if capacity:
        tables.insert(
            1,
            Table(
                title="Around the account's limit (30 s each)",
                headers=DELIVERY_HEADERS,
                rows=[delivery_row(outcome) for outcome in capacity],
                note="Bigger sites at the rate that fills the account's 10,000 posts a second; "
                "one message at a time to sites bigger than the burst; many small sites, "
                "whose messages each cost a query and an invocation's share.",
            ),
        )
    return BenchResult(
        key="b5",
        title="B5 scale: 10,000 viewers on one site, 100 busy sites",
        method=__doc__ or "",
        tables=tables,
        goals=goals,
    )


def main() -> None:
    bench_main(run, __doc__)


if __name__ == "__main__":
    main()
