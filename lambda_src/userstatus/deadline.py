"""The time an invocation has left, so that every DynamoDB call fits in it.

Lambda stops a function at its timeout: a call still waiting then would leave API Gateway to
answer a bare 500 instead of the documented 503 with Retry-After, and the broadcaster would
replay its whole batch. So each handler starts the clock from its context (``within_time``),
and an attempt is sent only if it can fail and still leave time for the SDK's next backoff and
for the answer (``check_attempt``, hooked before each send of the shared DynamoDB client);
otherwise the call fails at once with ``OutOfTime``, which callers see as the store being
unavailable.

With the settings below an attempt is sent only with 5.5 s left: it ends (at worst, timing
out) with 2.5 s left, and after the SDK's backoff 0.5 s remain to answer. A call that keeps
timing out in a function with a 10 s timeout: attempts at 0 s and by 4 s, the third refused by
9 s, then the 503.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

# The shared DynamoDB client's settings (userstatus.runtime builds it from these). A DynamoDB
# request takes milliseconds; 1 s to connect and 2 s between bytes of an answer are generous.
CONNECT_TIMEOUT_SECONDS = 1
READ_TIMEOUT_SECONDS = 2
# botocore's standard retry mode: this many attempts in all, the delay before attempt n + 1 a
# random fraction of 2 ** (n - 1) seconds (botocore.retries.standard.ExponentialBackoff), so at
# most 2 s before the third.
TOTAL_MAX_ATTEMPTS = 3
MAX_BACKOFF_SECONDS = 2 ** (TOTAL_MAX_ATTEMPTS - 2)
# Time kept to log and answer after the last attempt.
ANSWER_SECONDS = 0.5
# An attempt starts only with this much left: its own worst case, the backoff after it, the answer.
ATTEMPT_NEEDS_SECONDS = (
    CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS + MAX_BACKOFF_SECONDS + ANSWER_SECONDS
)

Handler = TypeVar("Handler", bound=Callable[[Any, Any], Any])
_ends_at: ContextVar[float | None] = ContextVar("userstatus_invocation_ends_at", default=None)


class OutOfTime(Exception):
    """Too little of the invocation is left for another attempt."""


def within_time(handler: Handler) -> Handler:
    """Decorate a Lambda handler: its invocation's clock starts from the context's remaining
    time (no limit if it has none) and stops when it returns."""

    @functools.wraps(handler)
    def bounded(event: Any, context: Any) -> Any:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        ends_at = None if remaining is None else time.monotonic() + float(remaining()) / 1000
        token = _ends_at.set(ends_at)
        try:
            return handler(event, context)
        finally:
            _ends_at.reset(token)

    return bounded  # type: ignore[return-value]


def seconds_left() -> float | None:
    """Seconds before the function's timeout; None outside an invocation with a context."""
    ends_at = _ends_at.get()
    return None if ends_at is None else ends_at - time.monotonic()


def check_attempt(**_: Any) -> None:
    """A botocore ``before-send`` handler: refuse an attempt that may not fit (``OutOfTime``).

    botocore hands a handler's exception back to its retry loop, which does not retry an
    unknown exception: the call fails at once."""
    left = seconds_left()
    if left is not None and left < ATTEMPT_NEEDS_SECONDS:
        raise OutOfTime(
            f"{left:.1f} s left, an attempt needs {ATTEMPT_NEEDS_SECONDS:g} s to fail safely"
        )
