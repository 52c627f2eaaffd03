"""Load on the local relay: many subscribers over many sites, counting every message.

The relay runs as a child process (``userstatus_local.process.RelayProcess``). This process
opens S WebSocket subscribers spread evenly over K sites (subscriber i on site i mod K), waits
until ``GET /onlineusers`` counts them all, then posts for a fixed time at a fixed total rate
spread over the sites: each site has one poster sending its messages one after another on the
site's schedule (message n at ``start + n * K / rate``; a late answer delays the next, which
shows as an achieved rate below the target, never as a burst). Posting one at a time per site
makes the stored order the posting order, so every subscriber must receive exactly its site's
messages 0, 1, 2, ... in that order.

Counted per run: messages posted (answered 200), post errors (any other answer or no answer:
explicit failures, not losses), messages stored (``GET /recent-logs?after_time=0`` of each
site), deliveries expected (posted x subscribers of the site) and made, duplicates, frames out
of order, and the relay's own accounting from its JSON logs (the broadcaster's ``batch done``
totals: delivered, gone, failed; dropped slow clients; records dropped after retries). A
delivery made more than 10 s after the last post is late (a backlog: the relay did not keep
up); one not made 70 s after it is lost. Then rate steps (each a fixed time at a higher rate,
stopping at the first step with a late or lost delivery) find the highest post rate the relay
keeps up with, losing nothing. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from websockets.asyncio.client import connect

from bench.common import bench_main, wait_online
from bench.report import BenchResult, Goal, Table
from userstatus_local.process import RelayProcess

CONNECT_TIMEOUT = 60.0
DRAIN_SECONDS = 10.0
# After the drain window, how long to keep waiting for a backlog before calling it lost.
BACKLOG_SECONDS = 60.0
POST_TIMEOUT = 30.0


@dataclass(frozen=True)
class LoadSettings:
    """One load scenario: subscribers over sites, main rate and time, then rate steps."""

    subscribers: int
    sites: int
    rate: float
    seconds: float
    steps: tuple[float, ...] = ()
    step_seconds: float = 10.0


LONG = LoadSettings(
    subscribers=500,
    sites=10,
    rate=20.0,
    seconds=60.0,
    steps=(20.0, 40.0, 60.0, 80.0, 120.0, 160.0),
    step_seconds=10.0,
)
QUICK = LoadSettings(
    subscribers=50, sites=5, rate=10.0, seconds=5.0, steps=(20.0,), step_seconds=3.0
)


@dataclass
class LoadRun:
    """What one posting run found."""

    label: str
    target_rate: float
    seconds: float
    subscribers: int
    sites: int
    posted: int = 0
    post_errors: int = 0
    stored: int = 0
    expected: int = 0
    delivered: int = 0
    late: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    exact_subscribers: int = 0
    achieved_rate: float = 0.0
    relay_delivered: int = 0
    relay_failed: int = 0
    relay_gone: int = 0
    relay_dropped_clients: int = 0
    relay_dropped_records: int = 0
    wrong_frames: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Deliveries expected (posted x subscribers of its site) and never made."""
        return self.expected - self.delivered

    @property
    def lossless(self) -> bool:
        """Every message posted, stored and delivered once, in order, to every subscriber."""
        return (
            self.lost == 0
            and self.late == 0
            and self.post_errors == 0
            and self.stored == self.posted
            and self.duplicates == 0
            and self.out_of_order == 0
            and not self.wrong_frames
            and self.exact_subscribers == self.subscribers
        )

    def row(self) -> list[str]:
        """A table row."""
        return [
            self.label,
            str(self.subscribers),
            str(self.sites),
            f"{self.target_rate:g}/s",
            f"{self.achieved_rate:.1f}/s",
            f"{self.seconds:g} s",
            str(self.posted),
            str(self.post_errors),
            str(self.stored),
            str(self.expected),
            str(self.delivered),
            str(self.late),
            str(self.lost),
            str(self.duplicates + self.out_of_order),
            f"{self.relay_delivered} / {self.relay_failed} / {self.relay_gone}",
            str(self.relay_dropped_clients + self.relay_dropped_records),
            "yes" if self.lossless else "**no**",
        ]


HEADERS = [
    "run",
    "subscribers",
    "sites",
    "target rate",
    "achieved rate",
    "time",
    "posted",
    "post errors",
    "stored",
    "deliveries expected",
    "delivered",
    "of which late",
    "lost",
    "duplicate or out of order",
    "relay: delivered / failed / gone",
    "relay: dropped",
    "lossless",
]


class Subscriber:
    """One WebSocket client of one site, recording the sequence numbers of a run's frames."""

    def __init__(self, site: str) -> None:
        self.site = site
        self.connection: Any = None
        self.tag = ""
        self.received: list[int] = []
        self.wrong: list[str] = []
        self.task: asyncio.Task[None] | None = None

    async def open(self, ws_url: str) -> None:
        """Connect and start the receive loop."""
        self.connection = await connect(
            f"{ws_url}/?site={self.site}", open_timeout=CONNECT_TIMEOUT, max_queue=None
        )
        self.task = asyncio.create_task(self._receive())

    async def _receive(self) -> None:
        async for frame in self.connection:
            try:
                data = json.loads(frame)
                tag, site, sequence = str(data["message"]).split(" ")
            except (ValueError, KeyError):
                self.wrong.append(str(frame)[:200])
                continue
            if tag != self.tag:
                continue
            if site != self.site or data["site"] != self.site:
                self.wrong.append(str(frame)[:200])
                continue
            self.received.append(int(sequence))

    async def close(self) -> None:
        """Close the connection and stop the receive loop."""
        if self.connection is not None:
            await self.connection.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def open_subscribers(ws_url: str, sites: list[str], count: int) -> list[Subscriber]:
    """``count`` subscribers spread over ``sites``, connected 20 at a time."""
    subscribers = [Subscriber(sites[i % len(sites)]) for i in range(count)]
    gate = asyncio.Semaphore(20)

    async def one(subscriber: Subscriber) -> None:
        async with gate:
            await subscriber.open(ws_url)

    await asyncio.gather(*(one(s) for s in subscribers))
    return subscribers


def relay_accounting(records: list[dict[str, Any]], run: LoadRun) -> None:
    """Add the relay's own counts (from its JSON log records of this run) to ``run``."""
    for record in records:
        message = record.get("message")
        if message == "batch done":
            run.relay_delivered += int(record.get("delivered", 0))
            run.relay_failed += int(record.get("failed", 0))
            run.relay_gone += int(record.get("gone", 0))
        elif message == "slow websocket client dropped":
            run.relay_dropped_clients += 1
        elif str(message).startswith("records dropped"):
            run.relay_dropped_records += len(record.get("sequence_numbers", []))


async def post_for(
    session: aiohttp.ClientSession,
    http_url: str,
    subscribers: list[Subscriber],
    sites: list[str],
    run: LoadRun,
    relay: Any,
) -> None:
    """Post at ``run.target_rate`` over ``sites`` for ``run.seconds``; count into ``run``."""
    tag = uuid.uuid4().hex[:8]
    for subscriber in subscribers:
        subscriber.tag, subscriber.received = tag, []
    per_site = max(1, round(run.target_rate * run.seconds / len(sites)))
    interval = len(sites) / run.target_rate
    posted: dict[str, int] = dict.fromkeys(sites, 0)
    records_before = len(relay.log_records())
    started = time.perf_counter()
    last_sent = started

    async def post_site(index: int, site: str) -> None:
        nonlocal last_sent
        # Sites start staggered, so the total rate is even rather than K posts at once.
        offset = index * interval / len(sites)
        for sequence in range(per_site):
            delay = started + offset + sequence * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            last_sent = max(last_sent, time.perf_counter())
            body = {"site": site, "log_message": f"{tag} {site} {posted[site]}"}
            try:
                async with session.post(f"{http_url}/newlog", json=body) as answer:
                    await answer.read()
                    ok = answer.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                posted[site] += 1
            else:
                run.post_errors += 1

    await asyncio.gather(*(post_site(i, s) for i, s in enumerate(sites)))
    run.posted = sum(posted.values())
    run.achieved_rate = (
        (run.posted + run.post_errors - 1) / (last_sent - started) if last_sent > started else 0.0
    )
    run.expected = sum(posted[s.site] for s in subscribers)
    deadline = time.perf_counter() + DRAIN_SECONDS
    while sum(len(s.received) for s in subscribers) < run.expected:
        if time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.05)
    in_time = sum(len(s.received) for s in subscribers)
    # A backlog is not a loss: wait for it (bounded), counting what arrives as late.
    deadline = time.perf_counter() + BACKLOG_SECONDS
    while sum(len(s.received) for s in subscribers) < run.expected:
        if time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.2)
    run.late = sum(len(s.received) for s in subscribers) - in_time
    for subscriber in subscribers:
        got = subscriber.received
        distinct = set(got)
        run.delivered += len(distinct & set(range(posted[subscriber.site])))
        run.duplicates += len(got) - len(distinct)
        run.out_of_order += sum(1 for a, b in itertools.pairwise(got) if b <= a)
        run.exact_subscribers += got == list(range(posted[subscriber.site]))
        run.wrong_frames += subscriber.wrong
        subscriber.wrong = []
    for site in sites:
        async with session.get(
            f"{http_url}/recent-logs", params={"site": site, "after_time": "0"}
        ) as answer:
            entries = await answer.json()
        run.stored += sum(1 for e in entries if str(e["message"]).startswith(tag + " "))
    await asyncio.sleep(0.5)  # let the relay write its last batch log lines
    relay_accounting(relay.log_records()[records_before:], run)


async def load_relay(relay: Any, settings: LoadSettings) -> tuple[LoadRun, list[LoadRun]]:
    """The main run, then the rate steps until one loses a message."""
    run_id = uuid.uuid4().hex[:6]
    sites = [f"load-{run_id}-{n}" for n in range(settings.sites)]
    timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=max(32, settings.sites * 2))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        subscribers = await open_subscribers(relay.ws_url, sites, settings.subscribers)
        try:
            counts = {site: sum(s.site == site for s in subscribers) for site in sites}
            await wait_online(session, relay.http_url, counts, CONNECT_TIMEOUT)
            main = LoadRun("main", settings.rate, settings.seconds, len(subscribers), len(sites))
            await post_for(session, relay.http_url, subscribers, sites, main, relay)
            stepped: list[LoadRun] = []
            for rate in settings.steps:
                step = LoadRun("step", rate, settings.step_seconds, len(subscribers), len(sites))
                await post_for(session, relay.http_url, subscribers, sites, step, relay)
                stepped.append(step)
                if not step.lossless:
                    break
        finally:
            await asyncio.gather(*(s.close() for s in subscribers), return_exceptions=True)
    return main, stepped


def run_load(settings: LoadSettings) -> tuple[LoadRun, list[LoadRun]]:
    """Start a relay, run ``settings`` against it, stop it."""

    relay = RelayProcess.start()
    try:
        return asyncio.run(load_relay(relay, settings))
    finally:
        relay.stop()


def run(quick: bool) -> BenchResult:
    """The load benchmark (``quick``: 50 subscribers, 5 sites, 10/s for 5 s)."""
    settings = QUICK if quick else LONG
    main, stepped = run_load(settings)
    result = BenchResult(
        key="load",
        title="Load: subscribers over many sites, nothing lost",
        method=(__doc__ or "").split("\n\n", 1)[1].strip(),
    )
    result.tables.append(
        Table(
            title="Messages posted, stored and delivered",
            headers=HEADERS,
            rows=[main.row(), *(step.row() for step in stepped)],
            note="late: deliveries made more than 10 s after the last post (a backlog: the "
            "relay did not keep up); lost: never made, 70 s after the last post. relay: the "
            "broadcaster's own totals from the relay's logs (failed: posts to a connection "
            "that failed after retries; gone: 410) and clients or stream records it dropped.",
        )
    )
    lossless = [s.target_rate for s in stepped if s.lossless]
    if lossless:
        highest = f"{max(lossless):g}/s"
        if stepped[-1].lossless:
            highest += " (every step was lossless; the limit is higher)"
    else:
        highest = "none of the steps"
    result.notes.append(
        f"Highest post rate kept up with (nothing late or lost), {settings.subscribers} "
        f"subscribers over "
        f"{settings.sites} sites: **{highest}**."
    )
    result.goals.append(
        Goal(
            f"Load: {settings.subscribers} subscribers, {settings.sites} sites, "
            f"{settings.rate:g}/s for {settings.seconds:g} s",
            "0 lost",
            f"{main.lost} lost of {main.expected}",
            main.lossless,
        )
    )
    return result


def main() -> None:
    """``python -m bench.load [--quick] [--json PATH]``."""
    bench_main(run, __doc__)


if __name__ == "__main__":
    main()
