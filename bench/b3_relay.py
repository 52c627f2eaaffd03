"""B3: end to end on the local relay, POST to WebSocket delivery.

The relay runs as a child process (``userstatus_local.process.RelayProcess``: HTTP API,
WebSocket API and its management API, all through the real handlers), with its two children:
the event source process (stream poller and broadcast handler) and the embedded DynamoDB
(moto). This process opens S WebSocket subscribers on one site (the ``websockets`` client),
waits until ``GET /onlineusers`` counts them all, then posts messages over HTTP
(one pooled aiohttp session) on a fixed schedule: message i is sent at ``start + i / rate``,
each POST in its own task so a slow answer never delays the schedule. Each message carries
its sequence number; latency is the time from just before its POST is sent to the moment a
subscriber's receive loop gets the frame, over every (message, subscriber) delivery. A
message is lost for a subscriber if its frame has not arrived 10 s after the last POST.

A baseline run first posts 100 messages at 5/s to a site with one subscriber (the relay's
cost per message, apart from fan-out). The main run posts 1,000 messages at 5/s to 100
subscribers (500 deliveries a second). The rate steps (2, 5, 10, 20, 50/s, 10 s of posts
each, stopping at the first step that fails) find the highest sustained rate: one at which
every subscriber gets every message, the posts keep to the schedule (achieved rate at least
90% of the target) and no backlog builds up (p99 latency under 1 s).
Loopback only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from websockets.asyncio.client import connect

from bench.common import bench_main, child_cpu_seconds, percentile, wait_online
from bench.report import BenchResult, Goal, Table
from userstatus_local.process import RelayProcess

DRAIN_SECONDS = 10.0
CONNECT_TIMEOUT = 30.0
GOAL_MEDIAN_MS = 50.0
GOAL_P99_MS = 200.0
SUSTAINED_P99_MS = 1000.0
SUSTAINED_RATE_SHARE = 0.9
# The relay's processes (userstatus_local.startup starts both children).
CHILD_MODULES = {
    "event source": "userstatus_local.event_source",
    "DynamoDB": "userstatus_local.moto_server",
}
PROCESS_NAMES = ("relay", *CHILD_MODULES)


@dataclass
class Run:
    """What one posting run found."""

    label: str
    target_rate: float
    count: int
    subscribers: int
    achieved_rate: float = 0.0
    latencies: list[float] = field(default_factory=list)
    lost: int = 0
    duplicates: int = 0
    post_errors: int = 0
    # CPU seconds of each process of the relay over the run: relay, event source, DynamoDB.
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0

    @property
    def total_cpu(self) -> float:
        """CPU seconds of the relay and its children together."""
        return sum(self.cpu.values())

    @property
    def sustained(self) -> bool:
        """Every delivery made, on schedule, without a growing backlog."""
        return (
            self.lost == 0
            and self.post_errors == 0
            and self.achieved_rate >= SUSTAINED_RATE_SHARE * self.target_rate
            and bool(self.latencies)
            and percentile(self.latencies, 0.99) * 1000 <= SUSTAINED_P99_MS
        )

    def row(self) -> list[str]:
        """A table row: rate, counts, latency figures, verdict."""
        ms = [x * 1000 for x in self.latencies] or [float("nan")]
        return [
            self.label,
            f"{self.target_rate:g}/s",
            f"{self.achieved_rate:.1f}/s",
            str(self.subscribers),
            str(self.count),
            str(len(self.latencies)),
            str(self.lost),
            f"{statistics.median(ms):.1f}",
            f"{percentile(ms, 0.99):.1f}",
            f"{max(ms):.1f}",
            *(
                f"{self.cpu.get(name, 0.0) / self.wall * 100:.0f}%" if self.wall else "-"
                for name in PROCESS_NAMES
            ),
            f"{self.total_cpu / len(self.latencies) * 1e6:.0f}" if self.latencies else "-",
            "yes" if self.sustained else "no",
        ]


class Subscribers:
    """S WebSocket clients of one site recording when each numbered frame arrives."""

    def __init__(self, ws_url: str, site: str, count: int) -> None:
        self._url = f"{ws_url}/?site={site}"
        self._count = count
        self._connections: list[Any] = []
        self._readers: list[asyncio.Task[None]] = []
        self.arrivals: list[dict[int, float]] = []
        self.duplicates = 0
        self.tag = ""

    async def open(self) -> None:
        """Connect every subscriber (ten at a time) and start their receive loops."""
        gate = asyncio.Semaphore(10)

        async def one() -> Any:
            async with gate:
                return await connect(self._url, open_timeout=CONNECT_TIMEOUT, max_queue=None)

        self._connections = list(await asyncio.gather(*(one() for _ in range(self._count))))
        self.arrivals = [{} for _ in self._connections]
        self._readers = [
            asyncio.create_task(self._receive(c, a))
            for c, a in zip(self._connections, self.arrivals, strict=True)
        ]

    def start_run(self, tag: str) -> None:
        """Count only frames of messages tagged ``tag`` from now on."""
        self.tag = tag
        self.duplicates = 0
        for arrivals in self.arrivals:
            arrivals.clear()

    async def _receive(self, connection: Any, arrivals: dict[int, float]) -> None:
        async for frame in connection:
            received = time.perf_counter()
            tag, _, sequence = json.loads(frame)["message"].partition(" ")
            if tag != self.tag:
                continue
            number = int(sequence)
            if number in arrivals:
                self.duplicates += 1
            else:
                arrivals[number] = received

    def delivered(self) -> int:
        """Deliveries recorded in the current run."""
        return sum(len(a) for a in self.arrivals)

    async def close(self) -> None:
        """Close every connection and stop the receive loops."""
        await asyncio.gather(*(c.close() for c in self._connections), return_exceptions=True)
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def post_at_rate(
    session: Any,
    http_url: str,
    site: str,
    subscribers: Subscribers,
    run: Run,
    relay_pid: int,
) -> None:
    """Post ``run.count`` messages at ``run.target_rate``; record deliveries into ``run``."""
    tag = uuid.uuid4().hex[:8]
    subscribers.start_run(tag)
    sent: dict[int, float] = {}
    tasks: list[asyncio.Task[None]] = []

    async def post(number: int) -> None:
        body = {"site": site, "log_message": f"{tag} {number}", "log_level": "info"}
        sent[number] = time.perf_counter()
        try:
            async with session.post(f"{http_url}/newlog", json=body) as answer:
                await answer.read()
                if answer.status != 200:
                    run.post_errors += 1
        except (aiohttp.ClientError, TimeoutError):
            run.post_errors += 1

    cpu_before = relay_cpu_seconds(relay_pid)
    started = time.perf_counter()
    for number in range(run.count):
        delay = started + number / run.target_rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(number)))
    await asyncio.gather(*tasks)
    expected = run.count * subscribers_count(subscribers)
    deadline = time.perf_counter() + DRAIN_SECONDS
    while subscribers.delivered() < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    run.wall = time.perf_counter() - started
    cpu_after = relay_cpu_seconds(relay_pid)
    run.cpu = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    first, last = min(sent.values()), max(sent.values())
    run.achieved_rate = (run.count - 1) / (last - first) if last > first else float(run.count)
    for arrivals in subscribers.arrivals:
        run.latencies.extend(arrivals[n] - sent[n] for n in arrivals if n in sent)
    run.lost = expected - len(run.latencies)
    run.duplicates = subscribers.duplicates


def relay_cpu_seconds(relay_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the relay and by each of its children, by PROCESS_NAMES."""
    seconds = {"relay": child_cpu_seconds(relay_pid)}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent != relay_pid:
            continue
        for name, module in CHILD_MODULES.items():
            if module.encode() in command:
                seconds[name] = child_cpu_seconds(int(entry.name))
    return seconds


def subscribers_count(subscribers: Subscribers) -> int:
    """How many subscribers are connected."""
    return len(subscribers.arrivals)


async def bench_relay(
    http_url: str,
    ws_url: str,
    relay_pid: int,
    *,
    subscriber_count: int,
    main_count: int,
    main_rate: float,
    steps: list[float],
    step_seconds: float,
    baseline_count: int,
) -> tuple[Run, list[Run]]:
    """Baseline with one subscriber, the main run, then rate steps until a step fails."""
    site = "bench-" + uuid.uuid4().hex[:10]
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        lone = Subscribers(ws_url, site + "-lone", 1)
        await lone.open()
        try:
            await wait_online(session, http_url, {site + "-lone": 1}, CONNECT_TIMEOUT)
            warm_up = Run("warm-up", 10, 10, 1)
            await post_at_rate(session, http_url, site + "-lone", lone, warm_up, relay_pid)
            baseline = Run("baseline: 1 subscriber", main_rate, baseline_count, 1)
            await post_at_rate(session, http_url, site + "-lone", lone, baseline, relay_pid)
        finally:
            await lone.close()
        subscribers = Subscribers(ws_url, site, subscriber_count)
        await subscribers.open()
        try:
            await wait_online(session, http_url, {site: subscriber_count}, CONNECT_TIMEOUT)
            warm_up = Run("warm-up", 10, 10, subscriber_count)
            await post_at_rate(session, http_url, site, subscribers, warm_up, relay_pid)
            main = Run("main", main_rate, main_count, subscriber_count)
            await post_at_rate(session, http_url, site, subscribers, main, relay_pid)
            stepped: list[Run] = []
            for rate in steps:
                step = Run("step", rate, max(10, round(rate * step_seconds)), subscriber_count)
                await post_at_rate(session, http_url, site, subscribers, step, relay_pid)
                stepped.append(step)
                if not step.sustained:
                    break
                await asyncio.sleep(1.0)
        finally:
            await subscribers.close()
    return main, [baseline, *stepped]


def run(quick: bool) -> BenchResult:
    """Start the relay, measure, stop it."""

    if quick:
        settings: dict[str, Any] = {
            "subscriber_count": 10,
            "main_count": 40,
            "main_rate": 20.0,
            "baseline_count": 20,
            "steps": [50.0],
            "step_seconds": 1.0,
        }
    else:
        settings = {
            "subscriber_count": 100,
            "main_count": 1000,
            "main_rate": 5.0,
            "baseline_count": 100,
            "steps": [2.0, 5.0, 10.0, 20.0, 50.0],
            "step_seconds": 10.0,
        }
    relay = RelayProcess.start(env={"LOG_LEVEL": "WARNING"})
    try:
        main, (baseline, *stepped) = asyncio.run(
            bench_relay(relay.http_url, relay.ws_url, relay.process.pid, **settings)
        )
    finally:
        relay.stop()

    result = BenchResult(
        key="b3",
        title="B3 end to end on the local relay",
        method=(__doc__ or "").split("\n\n", 1)[1].strip(),
    )
    headers = [
        "run",
        "target rate",
        "achieved rate",
        "subscribers",
        "messages",
        "deliveries",
        "lost",
        "median ms",
        "p99 ms",
        "max ms",
        "relay CPU",
        "event source CPU",
        "DynamoDB CPU",
        "CPU µs/delivery",
        "sustained",
    ]
    result.tables.append(
        Table(
            title="POST sent to frame received, over every delivery",
            headers=headers,
            rows=[baseline.row(), main.row(), *(step.row() for step in stepped)],
            note="CPU columns: each relay process's CPU time over the run's wall time (100% is "
            "one core of this 2-core machine), for the relay (HTTP and WebSocket servers, the "
            "management API), the event source process and the embedded DynamoDB; µs/delivery is "
            "the three together. The benchmark client shares the same two cores.",
        )
    )
    sustained = [s.target_rate for s in stepped if s.sustained]
    highest = f"{max(sustained):g}/s" if sustained else "none of the steps"
    if stepped and stepped[-1].sustained:
        highest += " (every step passed; the true limit is higher)"
    result.notes.append(
        f"Highest sustained post rate with {settings['subscriber_count']} subscribers: "
        f"**{highest}** ({max(sustained, default=0) * settings['subscriber_count']:g} "
        "deliveries/s)."
    )
    main_ms = [x * 1000 for x in main.latencies] or [float("inf")]
    median_ms = statistics.median(main_ms)
    p99_ms = percentile(main_ms, 0.99)
    label = (
        f"{settings['main_count']} messages, {settings['subscriber_count']} subscribers, "
        f"{settings['main_rate']:g}/s"
    )
    result.goals += [
        Goal(
            f"B3 median latency ({label})",
            f"<= {GOAL_MEDIAN_MS:g} ms",
            f"{median_ms:.1f} ms",
            median_ms <= GOAL_MEDIAN_MS,
        ),
        Goal(
            f"B3 p99 latency ({label})",
            f"<= {GOAL_P99_MS:g} ms",
            f"{p99_ms:.1f} ms",
            p99_ms <= GOAL_P99_MS,
        ),
        Goal(f"B3 messages lost ({label})", "0", str(main.lost), main.lost == 0),
    ]
    result.goals.append(
        Goal(
            f"B3 highest sustained post rate, {settings['subscriber_count']} subscribers",
            "(reported)",
            f"{max(sustained):g}/s" if sustained else "below the lowest step",
            None,
        )
    )
    per_message = baseline.total_cpu / baseline.count
    per_delivery = (main.total_cpu / main.count - per_message) / main.subscribers
    result.notes.append(
        f"CPU of the relay's three processes: {per_message * 1000:.1f} ms per message with one "
        "subscriber (HTTP handler, DynamoDB put, stream read, connections query, one post), "
        f"and about {per_delivery * 1e6:.0f} µs more per extra subscriber (the larger "
        "connections query, a signed management API POST, serving it, a WebSocket frame)."
    )
    if main.duplicates:
        result.notes.append(f"Duplicate deliveries in the main run: {main.duplicates}.")
    return result


def main() -> None:
    """Run B3 and print its tables."""
    bench_main(run, __doc__)


if __name__ == "__main__":
    main()
