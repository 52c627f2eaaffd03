"""Running the synchronous Lambda handlers off the event loop.

The handlers block (boto3 calls, and the broadcaster posting to this relay's own management
API over HTTP), so every invocation runs in a worker thread; running one on the event loop
would deadlock the management API it is waiting for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from userstatus_local.events import LambdaContext

logger = logging.getLogger("userstatus_local.invoke")

LambdaHandler = Callable[[Mapping[str, Any], Any], Any]


class HandlerCrashed(Exception):
    """The handler raised instead of answering (Lambda reports an unhandled error)."""


class Invoker:
    """Invokes one handler per call in a thread pool, as one Lambda function would."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor

    async def invoke(
        self, handler: LambdaHandler, event: Mapping[str, Any], function_name: str
    ) -> Any:
        """The handler's answer; HandlerCrashed if it raised."""
        loop = asyncio.get_running_loop()
        context = LambdaContext(function_name)
        try:
            return await loop.run_in_executor(self._executor, handler, event, context)
        except Exception as error:
            logger.exception(
                "handler raised",
                extra={"function": function_name, "requestId": context.aws_request_id},
            )
            raise HandlerCrashed(function_name) from error
