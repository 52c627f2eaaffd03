"""Client emit: what ``UserStatusHandler`` costs the observatory's threads, per log call.

Four threads log a burst of 10,000 records (2,500 each, released together by a barrier) to a
logger whose only handler is a ``UserStatusHandler``; each ``logger.info()`` call is timed with
``perf_counter_ns``. That is the caller's whole cost: logging's record, the handler lock,
formatting and ``emit()`` (queue append under the handler's own lock), while the handler's
sender thread runs in the same interpreter. The relay is a stub in its own process (this
module with ``--port``), so its work never competes with the callers for the GIL:

* relay answering: each ``POST /newlog`` is answered at once; default queue (10,000);
* relay stuck: every request is held unanswered; queue of 1,000, so about 9,000 records of
  each burst are dropped (the drop path);
* baseline: the same burst to a ``logging.NullHandler``, logging's own cost.

Medians and p99 are over every call of every round (5 rounds; 1 with ``--quick``). Each
handler is closed right after its burst (``close_timeout`` 0.1 s), without waiting for its
queue to drain; its stderr reports are swallowed. Figures only: nothing asserts a timing.

    python -m bench.client_emit [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import perf_counter_ns

from bench.common import ServerProcess, bench_main, percentile, seconds_text
from bench.report import BenchResult, Goal, Table
from userstatus_client import UserStatusHandler

THREADS = 4
RECORDS_PER_THREAD = 2500
STUCK_QUEUE_SIZE = 1000
GOAL_MEDIAN_SECONDS = 0.001


@dataclass(frozen=True)
class Burst:
    """Per-call seconds of one burst, and what the handler did with the records."""

    seconds: list[float]
    sent: int
    dropped: int


def _stub_relay(port: int, hold: bool) -> None:
    """Serve ``POST /newlog`` on 127.0.0.1:port, answering at once or never; prints READY."""
    held = threading.Event()  # never set: held requests wait until the process ends

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            if hold:
                held.wait()
            answer = json.dumps(
                {
                    "site": body["site"],
                    "message": body["log_message"],
                    "log_level": body.get("log_level", "info"),
                    "timestamp": body.get("timestamp", 0),
                    "id": "bench",
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


def _burst(handler: logging.Handler, name: str) -> list[float]:
    """Time every ``logger.info()`` call of a 4-thread, 10,000-record burst through handler."""
    logger = logging.getLogger(f"bench.client_emit.{name}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    durations: list[list[int]] = [[] for _ in range(THREADS)]
    start = threading.Barrier(THREADS, timeout=60)

    def produce(index: int) -> None:
        own = durations[index]
        start.wait()
        for n in range(RECORDS_PER_THREAD):
            before = perf_counter_ns()
            logger.info("thread %d record %d", index, n)
            own.append(perf_counter_ns() - before)

    producers = [threading.Thread(target=produce, args=(i,), daemon=True) for i in range(THREADS)]
    gc.collect()
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join(300)
    if any(thread.is_alive() for thread in producers):
        raise RuntimeError("a producer thread did not finish within 300 s")
    logger.handlers.clear()
    return [ns / 1e9 for own in durations for ns in own]


def _handler_burst(url: str, name: str, queue_size: int) -> Burst:
    """One burst through a fresh handler; closed without waiting for the queue to drain."""

    with contextlib.redirect_stderr(io.StringIO()):
        handler = UserStatusHandler(
            "bench", url, queue_size=queue_size, close_timeout=0.1, timeout=0.5
        )
        seconds = _burst(handler, name)
        stats = handler.stats()
        handler.close()
        deadline = time.monotonic() + 10
        while handler.stats().queued and time.monotonic() < deadline:
            time.sleep(0.05)  # the request in flight ends (socket timeout 0.5 s): quiet stderr
    return Burst(seconds, stats.sent, stats.dropped)


def run(quick: bool) -> BenchResult:
    """Time the bursts against an answering and a stuck stub relay, and with a NullHandler."""
    rounds = 1 if quick else 5
    found: dict[str, list[Burst]] = {"answering": [], "stuck": [], "baseline": []}
    with (
        ServerProcess("bench.client_emit") as answering,
        ServerProcess("bench.client_emit", "--hold") as stuck,
    ):
        for index in range(rounds):  # interleaved, so load changes hit every variant alike
            found["answering"].append(
                _handler_burst(f"http://127.0.0.1:{answering.port}", f"a{index}", 10_000)
            )
            found["stuck"].append(
                _handler_burst(f"http://127.0.0.1:{stuck.port}", f"s{index}", STUCK_QUEUE_SIZE)
            )
            found["baseline"].append(Burst(_burst(logging.NullHandler(), f"b{index}"), 0, 0))

    labels = {
        "answering": "UserStatusHandler, relay answering (queue 10,000)",
        "stuck": f"UserStatusHandler, relay stuck (queue {STUCK_QUEUE_SIZE:,})",
        "baseline": "logging.NullHandler (logging's own cost)",
    }
    rows = []
    medians: dict[str, float] = {}
    for key, bursts in found.items():
        seconds = [s for burst in bursts for s in burst.seconds]
        medians[key] = statistics.median(seconds)
        rows.append(
            [
                labels[key],
                f"{len(seconds):,}",
                seconds_text(medians[key]),
                seconds_text(percentile(seconds, 0.99)),
                seconds_text(max(seconds)),
                "-" if key == "baseline" else f"{sum(b.sent for b in bursts) / rounds:,.0f}",
                "-" if key == "baseline" else f"{sum(b.dropped for b in bursts) / rounds:,.0f}",
            ]
        )
    result = BenchResult(
        key="client_emit",
        title="Client emit: logger.info() through UserStatusHandler",
        method=(__doc__ or "").split("\n\n", 1)[1].rsplit("\n\n", 1)[0].strip(),
    )
    result.tables.append(
        Table(
            title=f"{THREADS} threads x {RECORDS_PER_THREAD:,} records, {rounds} round(s)",
            headers=["handler", "calls", "median", "p99", "max", "sent / burst", "dropped / burst"],
            rows=rows,
            note="sent / burst: records the relay had answered when the last call returned.",
        )
    )
    for key in ("answering", "stuck"):
        result.goals.append(
            Goal(
                f"emit() median, 10,000-record burst from {THREADS} threads, relay {key}",
                f"< {seconds_text(GOAL_MEDIAN_SECONDS)}",
                seconds_text(medians[key]),
                medians[key] < GOAL_MEDIAN_SECONDS,
            )
        )
    return result


def main() -> None:
    """``--port N [--hold]``: the stub relay; otherwise the benchmark (``--quick``, ``--json``)."""
    if "--port" in sys.argv[1:]:
        parser = argparse.ArgumentParser(description="stub relay for bench.client_emit")
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--hold", action="store_true", help="never answer a request")
        args = parser.parse_args()
        _stub_relay(args.port, args.hold)
        return
    bench_main(run, __doc__)


if __name__ == "__main__":
    main()
