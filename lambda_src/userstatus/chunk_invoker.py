"""The broadcaster's side of a split fan-out: invoking the fan-out function for each chunk.

See ``userstatus.fanout`` for the split and the function's event and answer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from userstatus.management_api import FanoutResult

logger = logging.getLogger("userstatus.chunk_invoker")

# Invocations of one broadcast in flight at once (the rest wait for a thread): a site of
# 32 chunks (32,000 viewers at the default chunk size) is posted to all at once.
MAX_PARALLEL_INVOCATIONS = 32

Invoke = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class FanoutError(Exception):
    """An invocation of the fan-out function failed or answered something unreadable."""


def answer_of(result: FanoutResult) -> dict[str, Any]:
    """The function's answer for ``result``: its fields, which ``result_of`` reads back."""
    return dataclasses.asdict(result)


def result_of(answer: Mapping[str, Any]) -> FanoutResult:
    """The ``FanoutResult`` in an answer of the function; FanoutError if it is not one."""
    try:
        delivered, throttled = answer["delivered"], answer["throttled"]
        gone, failed = list(answer["gone"]), list(answer["failed"])
    except (KeyError, TypeError) as error:
        raise FanoutError(f"unreadable answer: {error!r}") from None
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (delivered, throttled)):
        raise FanoutError("unreadable answer: delivered and throttled must be whole numbers")
    if not all(isinstance(i, str) for i in gone + failed):
        raise FanoutError("unreadable answer: gone and failed must be lists of ids")
    return FanoutResult(delivered=delivered, gone=gone, failed=failed, throttled=throttled)


def lambda_invoke(client: Any, function_name: str) -> Invoke:
    """Invoke ``function_name`` synchronously with a boto3 Lambda client; its answer.

    A function error (the handler raised, or timed out) raises FanoutError. Only invocations
    Lambda did not run are retried, by the client's own retry mode (throttling, connection
    errors); its read timeout is longer than the function's, so a running invocation is never
    sent again.
    """

    def invoke(event: Mapping[str, Any]) -> Mapping[str, Any]:
        answer = client.invoke(
            FunctionName=function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps(event, separators=(",", ":")).encode(),
        )
        body = answer["Payload"].read()
        if answer.get("FunctionError"):
            raise FanoutError(f"{answer['FunctionError']}: {body[:300]!r}")
        try:
            parsed = json.loads(body)
        except ValueError:
            raise FanoutError(f"unreadable answer: {body[:300]!r}") from None
        if not isinstance(parsed, dict):
            raise FanoutError(f"unreadable answer: {body[:300]!r}")
        return parsed

    return invoke


class ChunkInvoker:
    """Runs the fan-out function for many chunks at once, on threads of the container."""

    def __init__(self, invoke: Invoke, *, max_parallel: int = MAX_PARALLEL_INVOCATIONS) -> None:
        self._invoke = invoke
        self._max_parallel = max_parallel
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def start(
        self, chunks: Sequence[Sequence[str]], frame: bytes, *, deadline: float | None
    ) -> PendingChunks:
        """Invoke the function for every chunk; ``deadline`` (``time.monotonic()``) bounds the
        posting, as for the broadcaster's own chunk."""
        pool = self._executor()
        text = frame.decode()
        futures = [pool.submit(self._invoke_chunk, list(chunk), text, deadline) for chunk in chunks]
        return PendingChunks(list(zip(chunks, futures, strict=True)))

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._max_parallel, thread_name_prefix="fanout"
                )
            return self._pool

    def _invoke_chunk(self, ids: list[str], frame: str, deadline: float | None) -> FanoutResult:
        seconds = 900.0 if deadline is None else deadline - time.monotonic()
        if seconds <= 0:
            return FanoutResult(failed=ids)
        return result_of(
            self._invoke({"frame": frame, "connection_ids": ids, "seconds": round(seconds, 3)})
        )


class PendingChunks:
    """Invocations under way; ``wait`` gathers what became of every chunk."""

    def __init__(self, chunks: list[tuple[Sequence[str], Future[FanoutResult]]]) -> None:
        self._chunks = chunks

    def wait(self) -> tuple[FanoutResult, int]:
        """Every chunk's outcome merged, and how many invocations failed. A failed invocation
        counts its whole chunk as failed: some of its posts may have been delivered, and
        posting them again could deliver them twice."""
        merged = FanoutResult()
        failures = 0
        for ids, future in self._chunks:
            try:
                result = future.result()
            except Exception:
                logger.exception(
                    "fan-out invocation failed; its chunk counts as failed",
                    extra={"connections": len(ids)},
                )
                failures += 1
                result = FanoutResult(failed=list(ids))
            merged.add(result)
        return merged, failures
