"""POST-to-WebSocket latency through the local relay, measured on this machine.

Starts ``python -m userstatus_local`` on free ports, subscribes one WebSocket client to a site,
then POSTs ``--count`` messages to /newlog at a steady ``--rate`` (each post on its own task, so a
slow one does not delay the schedule). A message's latency runs from just before its POST is
sent to the arrival of its broadcast frame: HTTP handler, DynamoDB write, stream poll,
broadcaster, management API post and WebSocket delivery. Prints median, p90, p99, max, the
POST round trip and the relay's CPU time per message (Linux), with the load average: the relay
is one Python process, so other load on the machine shows in the tail; ``--json`` prints the
figures as one JSON object instead.

    python bench/relay_latency.py [--count 300] [--rate 20] [--warmup 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
if str(REPOSITORY_ROOT) not in sys.path:
    sys.path.insert(0, str(REPOSITORY_ROOT))

import aiohttp  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

from userstatus_local.process import RelayProcess  # noqa: E402

RECEIVE_TIMEOUT_SECONDS = 30.0


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process so far (Linux /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


async def measure(relay: RelayProcess, count: int, rate: float, warmup: int) -> dict[str, Any]:
    """Post ``warmup + count`` messages and time each one to its frame; the figures."""
    site = "bench-" + uuid.uuid4().hex[:8]
    total = warmup + count
    sent_at: dict[str, float] = {}
    received_at: dict[str, float] = {}
    post_round_trips: list[float] = []
    all_received = asyncio.Event()

    async def receive(connection: ClientConnection) -> None:
        async for frame in connection:
            text = json.loads(frame)["message"]
            received_at[text] = time.perf_counter()
            if len(received_at) >= total:
                all_received.set()
                return

    async def post(session: aiohttp.ClientSession, text: str) -> None:
        body = {"site": site, "log_message": text, "log_level": "info"}
        started = time.perf_counter()
        sent_at[text] = started
        async with session.post(relay.http_url + "/newlog", json=body) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"POST answered {response.status}")
        post_round_trips.append(time.perf_counter() - started)

    async with (
        connect(f"{relay.ws_url}/?site={site}", max_size=None) as connection,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
    ):
        receiver = asyncio.create_task(receive(connection))
        posts = []
        cpu_before = process_cpu_seconds(relay.process.pid)
        start = time.perf_counter()
        for index in range(total):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.create_task(post(session, f"m{index:06d}")))
        await asyncio.gather(*posts)
        # Frames still missing after the timeout are reported as lost.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_received.wait(), RECEIVE_TIMEOUT_SECONDS)
        receiver.cancel()
        cpu_after = process_cpu_seconds(relay.process.pid)
        elapsed = time.perf_counter() - start

    measured = [f"m{index:06d}" for index in range(warmup, total)]
    latencies = sorted(
        (received_at[text] - sent_at[text]) * 1000 for text in measured if text in received_at
    )
    round_trips = sorted(t * 1000 for t in post_round_trips[warmup:])
    if not latencies:
        raise RuntimeError("no frame arrived")
    return {
        "benchmark": "relay_post_to_websocket_latency",
        "messages": count,
        "received": len(latencies),
        "lost": count - len(latencies),
        "rate_per_second": rate,
        "latency_ms": {
            "median": round(statistics.median(latencies), 2),
            "p90": round(percentile(latencies, 0.90), 2),
            "p99": round(percentile(latencies, 0.99), 2),
            "max": round(latencies[-1], 2),
            "min": round(latencies[0], 2),
        },
        "post_round_trip_ms": {
            "median": round(statistics.median(round_trips), 2),
            "p99": round(percentile(round_trips, 0.99), 2),
        },
        "relay_cpu_ms_per_message": (
            round((cpu_after - cpu_before) * 1000 / total, 2)
            if cpu_before is not None and cpu_after is not None
            else None
        ),
        "relay_cpu_share": (
            round((cpu_after - cpu_before) / elapsed, 2)
            if cpu_before is not None and cpu_after is not None
            else None
        ),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.1f}"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="messages measured (300)")
    parser.add_argument("--rate", type=float, default=20.0, help="posts per second (20)")
    parser.add_argument("--warmup", type=int, default=20, help="messages not measured (20)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with RelayProcess.start() as relay:
        figures = asyncio.run(measure(relay, args.count, args.rate, args.warmup))
    if args.json:
        print(json.dumps(figures))
    else:
        latency, round_trip = figures["latency_ms"], figures["post_round_trip_ms"]
        print(
            f"POST-to-WebSocket latency over {figures['received']} of {figures['messages']} "
            f"messages at {figures['rate_per_second']:g}/s ({figures['machine']}):\n"
            f"  median {latency['median']} ms, p90 {latency['p90']} ms, "
            f"p99 {latency['p99']} ms, max {latency['max']} ms, min {latency['min']} ms\n"
            f"  POST round trip: median {round_trip['median']} ms, p99 {round_trip['p99']} ms\n"
            f"  relay CPU: {figures['relay_cpu_ms_per_message']} ms a message "
            f"({figures['relay_cpu_share']} of a core)\n"
            f"  lost: {figures['lost']}"
        )
    return 0 if figures["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
