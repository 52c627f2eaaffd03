"""Running the synchronous Lambda handlers off the event loop, with Lambda's response limit.

The handlers block (boto3 calls, and the broadcaster posting to this relay's own management
API over HTTP), so every invocation runs in a worker thread; running one on the event loop
would deadlock the management API it is waiting for.

Lambda refuses a synchronous response over 6 MB serialized (6,291,456 bytes, "Invocation
payload (request and response)", docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html):
the invocation fails, and API Gateway answers 500. The relay does the same: an answer whose
JSON (as the Python 3.13 runtime serializes it: UTF-8, non-ASCII kept) passes the limit is a
failed invocation (``HandlerCrashed``), logged as Lambda reports it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from userstatus_local.events import LAMBDA_TIMEOUT_SECONDS, LambdaContext

logger = logging.getLogger("userstatus_local.invoke")

LambdaHandler = Callable[[Mapping[str, Any], Any], Any]
MAX_RESPONSE_BYTES = 6_291_456
# How often an invocation waiting for a free thread looks whether its handler has started.
QUEUED_POLL_SECONDS = 0.05


class HandlerCrashed(Exception):
    """The handler raised instead of answering (Lambda reports an unhandled error)."""


class Invoker:
    """Invokes one handler per call in a thread pool, as one Lambda function would, with that
    function's timeout and memory size (the context reports both; a handler still running at
    its timeout is a failed invocation, as Lambda's "Task timed out", and its thread is left to
    finish: Python cannot stop it)."""

    def __init__(
        self,
        executor: ThreadPoolExecutor,
        *,
        timeout_seconds: float = LAMBDA_TIMEOUT_SECONDS,
        memory_mb: int = 256,
    ) -> None:
        self._executor = executor
        self._timeout = timeout_seconds
        self._memory_mb = memory_mb

    async def invoke(
        self, handler: LambdaHandler, event: Mapping[str, Any], function_name: str
    ) -> Any:
        """The handler's answer; HandlerCrashed if it raised."""
        loop = asyncio.get_running_loop()
        context = LambdaContext(
            function_name, timeout_seconds=self._timeout, memory_limit_in_mb=self._memory_mb
        )

        begun: list[float] = []

        def run() -> Any:
            # The clock starts when the handler does, not while it waits for a free thread
            # (Lambda would start another instance instead of queueing).
            context.started_at = time.monotonic()
            begun.append(context.started_at)
            return handler(event, context)

        future = asyncio.ensure_future(loop.run_in_executor(self._executor, run))
        while not future.done():
            started = begun[0] if begun else None
            if started is not None and time.monotonic() >= started + self._timeout:
                logger.error(
                    f"Task timed out after {self._timeout:.2f} seconds",
                    extra={"function": function_name, "requestId": context.aws_request_id},
                )
                # Its late outcome is dropped, as Lambda drops it.
                future.add_done_callback(_drop_outcome)
                raise HandlerCrashed(function_name)
            if started is None:
                timeout = QUEUED_POLL_SECONDS
            else:
                timeout = started + self._timeout - time.monotonic()
            await asyncio.wait({future}, timeout=timeout)
        try:
            answer = future.result()
        except Exception as error:
            logger.exception(
                "handler raised",
                extra={"function": function_name, "requestId": context.aws_request_id},
            )
            raise HandlerCrashed(function_name) from error
        size = response_size(answer)
        if size > MAX_RESPONSE_BYTES:
            logger.error(
                "Response payload size exceeded maximum allowed payload size",
                extra={
                    "function": function_name,
                    "requestId": context.aws_request_id,
                    "bytes": size,
                    "limit": MAX_RESPONSE_BYTES,
                },
            )
            raise HandlerCrashed(function_name)
        return answer


def _drop_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def response_size(answer: Any) -> int:
    """Bytes of the answer as Lambda's Python runtime serializes it."""
    if answer is None:
        return 4
    return len(json.dumps(answer, ensure_ascii=False, default=str).encode())
