"""Shared pieces of the benchmarks: result tables, timing, the fake management API process.

Every benchmark module exposes ``run(quick: bool) -> BenchResult`` and a ``main()`` that prints
its tables; ``python -m bench`` runs each module in its own interpreter (so process CPU time,
import caches and the handlers' per-process runtime never leak between benchmarks) and collects
the results as JSON. Benchmarks report figures; they never assert timings.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import math
import os
import pstats
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

import aiohttp

from bench.report import BenchResult, render_result

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 30.0

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class Timing:
    """Wall-clock and process CPU seconds of one measured run."""

    wall: float
    cpu: float


@contextmanager
def measured() -> Iterator[list[Timing]]:
    """Time the block: wall clock and this process's CPU (all threads); appended on exit."""
    found: list[Timing] = []
    wall, cpu = time.perf_counter(), time.process_time()
    yield found
    found.append(Timing(time.perf_counter() - wall, time.process_time() - cpu))


def measure(action: Callable[[], object]) -> Timing:
    """Wall-clock and process CPU seconds of one call."""
    with measured() as found:
        action()
    return found[0]


def median_timing(timings: Sequence[Timing]) -> Timing:
    """Medians of wall and CPU seconds, taken separately."""
    return Timing(
        statistics.median(t.wall for t in timings), statistics.median(t.cpu for t in timings)
    )


def interleaved(
    actions: dict[str, Callable[[], object]],
    repeats: int,
    *,
    warm_up: bool = True,
    collect_garbage: bool = True,
) -> dict[str, list[Timing]]:
    """Time each action ``repeats`` times, round-robin in a rotated order, after one warm-up call
    of each unless ``warm_up`` is false. ``collect_garbage`` false for calls of microseconds,
    where a collection before each would cost more than the measurement."""
    if warm_up:
        for action in actions.values():
            action()
    timings: dict[str, list[Timing]] = {name: [] for name in actions}
    names = list(actions)
    for repeat in range(repeats):
        # Rotate the order so no variant always runs right after another; start each run
        # with a collected heap so a garbage collection triggered by one is not billed to
        # the next.
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            if collect_garbage:
                gc.collect()
            timings[name].append(measure(actions[name]))
    return timings


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0.99 for p99) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(round(fraction * len(ordered), 9))))
    return ordered[rank - 1]


def seconds_text(seconds: float) -> str:
    """Seconds with three significant figures, in ms below one second."""
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s"


def ratio_text(ratio: float) -> str:
    """A ratio such as ``84.2x``."""
    return f"{ratio:.3g}x"


def set_dummy_aws_environment() -> None:
    """Dummy credentials and region, so nothing ever reaches AWS or asks for credentials."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(DUMMY_ENV)


def load_text() -> str:
    """The 1, 5 and 15 minute load averages, e.g. ``0.42 / 0.61 / 0.70``."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


class ServerProcess:
    """``python -m <module> --port 0 ...`` as a child process that prints ``READY <port>``."""

    def __init__(self, module: str, *arguments: str) -> None:
        self._command = [sys.executable, "-m", module, "--port", "0", *arguments]
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def pid(self) -> int:
        """The child's process id (for reading its CPU time)."""
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            self._command,
            cwd=REPOSITORY_ROOT,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self._process.stdout is not None
        # readline() blocks: a reader thread hands the lines over, so the deadline holds even
        # if the child hangs without a word. It stops at READY or at the end of the output.
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=_read_until_ready, args=(self._process.stdout, lines), daemon=True
        ).start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line.startswith("READY "):
                self.port = int(line.split()[1])
                return self
            if not line:
                break
        self._process.kill()
        self._process.wait()
        raise RuntimeError(f"{' '.join(self._command[1:3])} did not start")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()


def _read_until_ready(stream: IO[str], lines: queue.Queue[str]) -> None:
    """Pass ``stream``'s lines on until a READY line or the end ("" then)."""
    for line in stream:
        lines.put(line)
        if line.startswith("READY "):
            return
    lines.put("")


class FakeManagementApiProcess(ServerProcess):
    """``python -m bench.fake_management_api``; ``endpoint`` once started."""

    def __init__(self, delay_ms: float = 10.0, stage: str = "bench") -> None:
        super().__init__("bench.fake_management_api", "--delay-ms", str(delay_ms))
        self._stage = stage

    @property
    def endpoint(self) -> str:
        """The management API endpoint, stage included, as the handlers are configured."""
        return f"http://127.0.0.1:{self.port}/{self._stage}"


async def wait_online(
    session: aiohttp.ClientSession, http_url: str, counts: dict[str, int], timeout: float
) -> None:
    """Wait until the relay's ``/onlineusers`` counts every subscriber of every site."""
    deadline = time.monotonic() + timeout
    for site, count in counts.items():
        while True:
            async with session.get(f"{http_url}/onlineusers", params={"site": site}) as answer:
                if (await answer.json())["connections"] >= count:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the relay did not register the subscribers of {site}")
            await asyncio.sleep(0.1)


def child_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a child process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def profile_of(action: Callable[[], object], top: int = 10) -> list[list[str]]:
    """The functions where ``action`` spends its CPU (by own time), as table rows."""
    profiler = cProfile.Profile()
    profiler.enable()
    action()
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    ranked = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda kv: kv[1][2],
        reverse=True,
    )
    for (filename, line, name), (_, calls, own, _cumulative, _) in ranked[:top]:
        where = f"{os.path.basename(filename)}:{line}" if line else filename
        rows.append(
            [
                f"`{name}` ({where})",
                str(calls),
                f"{own * 1000:.1f}",
                f"{own / total * 100:.0f}%" if total else "-",
            ]
        )
    return rows


def bench_main(run: Callable[[bool], BenchResult], description: str | None) -> None:
    """Command line of one benchmark module: ``[--quick] [--json PATH]``; prints its tables."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small N, few repetitions")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()
    started = time.perf_counter()
    result = run(args.quick)
    result.seconds = time.perf_counter() - started

    print(render_result(result))
    if args.json is not None:
        args.json.write_text(result.to_json())
