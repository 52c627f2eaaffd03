"""B1: broadcast fan-out, the relay's hot path, against the old design and against the floor.

A fake management API (``bench.fake_management_api``, its own process) answers every
``POST /{stage}/@connections/{id}`` with 200 after 10 ms. One frame goes to N connections with:

* (a) the old design: sequential posts, a new boto3 ``apigatewaymanagementapi`` client per post
  (from boto3's default session, as a Lambda container would, so the service model is cached);
* (b) the project's code, unchanged: ``userstatus.management_api.ConnectionPoster.post_to_all``
  at concurrency 64, warm (its keep-alive pool reused, as in a reused Lambda container);
  also the whole ``userstatus.broadcast.handler`` with a connections table of N rows in moto,
  reported separately (it adds the moto query of the connections);
* (c) the floor: asyncio workers at the same concurrency signing each request with a minimal
  SigV4 signer written here (not the project's) and posting over one pooled aiohttp session,
  nothing else.

Wall seconds and CPU seconds of this process (all threads; the fake runs elsewhere) are medians
of several runs, variants interleaved so that load on the machine hits them alike.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import functools
import hashlib
import hmac
import os
import statistics
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import boto3
from botocore.credentials import ReadOnlyCredentials
from moto import mock_aws

from bench.common import (
    FakeManagementApiProcess,
    Timing,
    bench_main,
    child_cpu_seconds,
    measure,
    median_timing,
    profile_of,
    ratio_text,
    seconds_text,
    set_dummy_aws_environment,
)
from bench.report import BenchResult, Goal, Table
from userstatus import keys
from userstatus.broadcast import handler
from userstatus.management_api import ConnectionPoster
from userstatus.model import validate_message
from userstatus.runtime import runtime

CONCURRENCY = 64
DELAY_MS = 10.0
REGION = "us-east-1"
SITE = "bench-site"
FRAME = (
    b'{"site": "bench-site", "message": "Roof opened; focusing on target M51", '
    b'"log_level": "info", "timestamp": "1763769600"}'
)
GOAL_VS_OLD = 30.0
GOAL_VS_FLOOR = 2.0


def connection_ids(count: int) -> list[str]:
    """Connection ids shaped like API Gateway's (16 characters ending in '=')."""
    return [base64.urlsafe_b64encode(os.urandom(11)).decode() for _ in range(count)]


def old_design(endpoint: str, ids: list[str], frame: bytes) -> None:
    """(a) Sequential posts, a new boto3 management API client for every post."""

    for connection_id in ids:
        client = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 (dummy)
        )
        client.post_to_connection(ConnectionId=connection_id, Data=frame)


class MinimalSigner:
    """SigV4 for ``POST {path}`` with signed headers host;x-amz-date: the floor's signer."""

    def __init__(self, access_key: str, secret_key: str, region: str) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._region = region
        self._keys: dict[str, bytes] = {}

    def sign(self, host: str, path: str, payload_sha256: str) -> dict[str, str]:
        """The X-Amz-Date and Authorization headers of one request."""
        amz_date = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        scope = f"{day}/{self._region}/execute-api/aws4_request"
        canonical = (
            f"POST\n{quote(path, safe='/~')}\n\nhost:{host}\nx-amz-date:{amz_date}\n\n"
            f"host;x-amz-date\n{payload_sha256}"
        )
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n" + (
            hashlib.sha256(canonical.encode()).hexdigest()
        )
        key = self._keys.get(day)
        if key is None:
            key = f"AWS4{self._secret_key}".encode()
            for part in (day, self._region, "execute-api", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {day: key}
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "X-Amz-Date": amz_date,
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}, "
                f"SignedHeaders=host;x-amz-date, Signature={signature}"
            ),
        }


class Floor:
    """(c) asyncio workers, one SigV4 signature per request, pooled aiohttp connections."""

    def __init__(self, endpoint: str, signer: Any, concurrency: int = CONCURRENCY) -> None:
        import aiohttp
        import yarl

        self._aiohttp = aiohttp
        self._url = yarl.URL
        base = yarl.URL(endpoint)
        self._origin = f"{base.scheme}://{base.host}:{base.port}"
        self._host = f"{base.host}:{base.port}"
        self._prefix = base.path.rstrip("/")
        self._signer = signer
        self._concurrency = concurrency
        self._loop = asyncio.new_event_loop()
        self._session: Any = None

    def post_to_all(self, ids: list[str], frame: bytes) -> int:
        """Post ``frame`` to every id; the number answered 200."""
        return self._loop.run_until_complete(self._fan_out(ids, frame))

    def close(self) -> None:
        """Close the session and the loop."""
        if self._session is not None:
            self._loop.run_until_complete(self._session.close())
        self._loop.close()

    async def _fan_out(self, ids: list[str], frame: bytes) -> int:
        if self._session is None:
            connector = self._aiohttp.TCPConnector(limit=self._concurrency)
            self._session = self._aiohttp.ClientSession(connector=connector)
        body_hash = hashlib.sha256(frame).hexdigest()
        pending = iter(ids)
        delivered = 0

        async def worker() -> None:
            nonlocal delivered
            for connection_id in pending:
                path = f"{self._prefix}/@connections/{quote(connection_id, safe='')}"
                headers = self._signer.sign(self._host, path, body_hash)
                headers["Content-Type"] = "application/json"
                url = self._url(self._origin + path, encoded=True)
                async with self._session.post(url, data=frame, headers=headers) as answer:
                    await answer.read()
                    delivered += answer.status == 200

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(ids)))))
        return delivered


def project_poster(endpoint: str) -> Any:
    """(b) The project's ``ConnectionPoster``, as ``userstatus.runtime`` configures it."""

    credentials = ReadOnlyCredentials("bench", "bench", None)
    return ConnectionPoster(
        endpoint, region=REGION, credentials=lambda: credentials, concurrency=CONCURRENCY
    )


class BroadcastHandlerRig:
    """(b, whole handler) ``userstatus.broadcast.handler`` on moto tables of N connections."""

    def __init__(self, endpoint: str) -> None:

        os.environ.update(
            {
                "MESSAGES_TABLE": "bench-messages",
                "CONNECTIONS_TABLE": "bench-connections",
                "WEBSOCKET_MANAGEMENT_ENDPOINT": endpoint,
                "BROADCAST_CONCURRENCY": str(CONCURRENCY),
                "LOG_LEVEL": "WARNING",
            }
        )
        self._mock = mock_aws()
        self._mock.start()

        self._client = boto3.client("dynamodb", region_name=REGION)
        self._client.create_table(**keys.MESSAGES.create_table_kwargs("bench-messages"))
        self._client.create_table(**keys.CONNECTIONS.create_table_kwargs("bench-connections"))
        self._runtime = runtime
        self._sites: set[str] = set()

    def event_for(self, site: str, count: int) -> dict[str, Any]:
        """A stream batch of one INSERT for ``site``, which gets ``count`` connections."""
        if site not in self._sites:
            now = int(time.time())
            requests = [
                {
                    "PutRequest": {
                        "Item": {
                            keys.CONNECTIONS.partition_key.name: {"S": site},
                            keys.CONNECTIONS.sort_key.name: {"S": connection_id},
                            "connected_at": {"N": str(now)},
                            keys.EXPIRES_AT: {"N": str(now + 7200)},
                        }
                    }
                }
                for connection_id in connection_ids(count)
            ]
            for start in range(0, len(requests), 25):
                self._client.batch_write_item(
                    RequestItems={"bench-connections": requests[start : start + 25]}
                )
            self._sites.add(site)
        now_float = time.time()
        message = validate_message(
            {"site": site, "log_message": "Roof opened; focusing on target M51"},
            received_at=now_float,
        )
        item = self._runtime().messages.item_of(message, received_at=now_float)
        return {
            "Records": [
                {
                    "eventName": "INSERT",
                    "eventSource": "aws:dynamodb",
                    "dynamodb": {"NewImage": item, "SequenceNumber": "1", "SizeBytes": 200},
                }
            ]
        }

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """One invocation of the broadcaster."""

        class Context:
            aws_request_id = "bench"

        answer: dict[str, Any] = handler(event, Context())
        return answer

    def close(self) -> None:
        """Close the poster and stop moto."""
        if "poster" in vars(self._runtime()):
            self._runtime().poster.close()
        self._runtime.cache_clear()
        self._mock.stop()


def run(quick: bool) -> BenchResult:
    """Measure (a), (b), (b, whole handler) and (c) for each N."""
    set_dummy_aws_environment()
    sizes = [10, 100] if quick else [10, 100, 1000]
    repeats = 2 if quick else 7
    old_repeats = {10: 3, 100: 1 if quick else 3, 1000: 1}
    result = BenchResult(
        key="b1",
        title="B1 broadcast fan-out",
        method=(__doc__ or "").split("\n\n", 1)[1].strip(),
    )
    variants = ["a", "b", "b_handler", "c"]
    labels = {
        "a": "(a) old design: sequential, new boto3 client per post",
        "b": "(b) project: `ConnectionPoster.post_to_all`",
        "b_handler": "(b) project: whole `broadcast.handler` (+ moto query)",
        "c": "(c) floor: asyncio + aiohttp pool + minimal SigV4",
    }
    timings: dict[tuple[str, int], list[Timing]] = {}
    fake_cpu: dict[tuple[str, int], list[float]] = {}
    profile_rows: list[list[str]] = []
    with FakeManagementApiProcess(delay_ms=DELAY_MS) as fake:
        endpoint = fake.endpoint
        poster = project_poster(endpoint)
        floor = Floor(endpoint, MinimalSigner("bench", "bench", REGION))
        rig = BroadcastHandlerRig(endpoint)
        try:
            warm_ids = connection_ids(CONCURRENCY)
            poster.post_to_all(warm_ids, FRAME)
            floor.post_to_all(warm_ids, FRAME)
            old_design(endpoint, warm_ids[:2], FRAME)
            rig.invoke(rig.event_for("warm-up", CONCURRENCY))
            for size in sizes:
                ids = connection_ids(size)
                event = rig.event_for(f"{SITE}-{size}", size)
                actions: dict[str, Callable[[], object]] = {
                    "a": functools.partial(old_design, endpoint, ids, FRAME),
                    "b": functools.partial(poster.post_to_all, ids, FRAME),
                    "b_handler": functools.partial(rig.invoke, event),
                    "c": functools.partial(floor.post_to_all, ids, FRAME),
                }
                for repeat in range(repeats):
                    for variant in variants:
                        if variant == "a" and repeat >= old_repeats[size]:
                            continue
                        fake_before = child_cpu_seconds(fake.pid)
                        timing = measure(actions[variant])
                        timings.setdefault((variant, size), []).append(timing)
                        fake_cpu.setdefault((variant, size), []).append(
                            child_cpu_seconds(fake.pid) - fake_before
                        )
            largest = sizes[-1]
            profile_ids = connection_ids(largest)
            profile_rows = profile_of(lambda: poster.post_to_all(profile_ids, FRAME))
        finally:
            poster.close()
            floor.close()
            rig.close()

    rows = []
    for size in sizes:
        for variant in variants:
            found = timings[(variant, size)]
            median = median_timing(found)
            rows.append(
                [
                    str(size),
                    labels[variant],
                    str(len(found)),
                    seconds_text(median.wall),
                    seconds_text(median.cpu),
                    f"{median.cpu / size * 1e6:.0f}",
                    seconds_text(statistics.median(fake_cpu[(variant, size)])),
                ]
            )
    result.tables.append(
        Table(
            title=f"Deliver one frame to N connections (fake answers after {DELAY_MS:g} ms, "
            f"concurrency {CONCURRENCY})",
            headers=[
                "N",
                "variant",
                "runs",
                "wall (median)",
                "CPU (median)",
                "CPU µs/post",
                "fake's CPU",
            ],
            rows=rows,
            note="CPU is this process's user+system time (all threads); the fake's CPU is the "
            "fake management API process's, read from /proc, for judging whether it was the "
            "bottleneck.",
        )
    )
    largest = sizes[-1]
    med = {v: median_timing(timings[(v, largest)]) for v in variants}
    a_over_b = med["a"].wall / med["b"].wall
    b_over_c = med["b"].wall / med["c"].wall
    ratio_rows = [
        ["(a) / (b), wall", ratio_text(a_over_b), f">= {GOAL_VS_OLD:g}x"],
        ["(a) / (b), CPU", ratio_text(med["a"].cpu / med["b"].cpu), "-"],
        ["(b) / (c), wall", ratio_text(b_over_c), f"<= {GOAL_VS_FLOOR:g}x"],
        ["(b) / (c), CPU", ratio_text(med["b"].cpu / med["c"].cpu), "-"],
        ["(b, handler) / (b), wall", ratio_text(med["b_handler"].wall / med["b"].wall), "-"],
    ]
    result.tables.append(
        Table(
            title=f"Ratios at N = {largest}", headers=["ratio", "measured", "goal"], rows=ratio_rows
        )
    )
    result.tables.append(
        Table(
            title=f"Where (b) spends its CPU at N = {largest} (cProfile, own time, top 10)",
            headers=["function", "calls", "own ms", "share"],
            rows=profile_rows,
            note="Profiled in a separate run; cProfile slows Python code, so absolute times "
            "are inflated.",
        )
    )
    suffix = "" if largest == 1000 else f" (quick mode: N = {largest})"
    result.goals.append(
        Goal(
            f"B1 (b) vs old design (a) at N = 1000{suffix}",
            f">= {GOAL_VS_OLD:g}x faster",
            ratio_text(a_over_b),
            a_over_b >= GOAL_VS_OLD,
        )
    )
    result.goals.append(
        Goal(
            f"B1 (b) vs floor (c) at N = 1000{suffix}",
            f"<= {GOAL_VS_FLOOR:g}x the time",
            ratio_text(b_over_c),
            b_over_c <= GOAL_VS_FLOOR,
        )
    )
    if b_over_c < 1:
        result.notes.append(
            "(b) beats the floor (c): the project's HTTP/1.1 on asyncio streams spends less CPU "
            f"per post ({med['b'].cpu / largest * 1e6:.0f} µs) than aiohttp's client with a "
            f"minimal signer ({med['c'].cpu / largest * 1e6:.0f} µs), so (c) as specified "
            "(pooled aiohttp) is a conservative floor."
        )
    return result


def main() -> None:
    """Run B1 and print its tables."""
    bench_main(run, __doc__)


if __name__ == "__main__":
    main()
