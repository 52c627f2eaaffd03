"""Entry point of the fan-out function: one message posted to one chunk of a big site's viewers.

The broadcaster posts a message to at most ``FANOUT_CHUNK_CONNECTIONS`` connections itself. A
site with more is split into chunks of that size: the broadcaster invokes this function
synchronously (``RequestResponse``) once for each chunk after the first, all at once, posts to
the first chunk meanwhile, and waits for every answer before it starts the site's next message.
So a viewer, who is in exactly one chunk, still gets a site's messages in stream order, and a
site of a few viewers costs no extra invocation.

This function only posts and reports. What a 410 means (a connection still connecting is posted
to again, an old one is forgotten) is decided by the broadcaster, for every chunk alike.

Event:  ``{"frame": "<JSON text>", "connection_ids": ["...", ...], "seconds": <time left>}``
Answer: ``{"delivered": n, "gone": [ids], "failed": [ids], "throttled": n}``

``seconds`` is the broadcaster's own time left to post: posts still unfinished then count as
failed, as the broadcaster counts its own (none is sent twice).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from userstatus import deadline
from userstatus.chunk_invoker import answer_of
from userstatus.logs import bind_request_id
from userstatus.management_api import FanoutResult
from userstatus.runtime import Runtime, runtime

logger = logging.getLogger("userstatus.fanout")

# Kept from the function's own timeout to answer the broadcaster.
ANSWER_RESERVE_SECONDS = 1.0


@deadline.within_time
def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Post one frame to one chunk of connections; what became of them."""
    bind_request_id(context)
    return post_chunk(runtime(), event)


def post_chunk(rt: Runtime, event: Mapping[str, Any]) -> dict[str, Any]:
    """The handler's work, given the container's runtime. A malformed event raises ValueError
    (the broadcaster sees a function error and counts the chunk as failed)."""
    frame = event.get("frame")
    ids = event.get("connection_ids")
    seconds = event.get("seconds")
    if not isinstance(frame, str):
        raise ValueError("frame must be a string")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("connection_ids must be a list of strings")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError("seconds must be a number")
    budget = float(seconds)
    left = deadline.seconds_left()
    if left is not None:
        budget = min(budget, left - ANSWER_RESERVE_SECONDS)
    if budget <= 0:
        result = FanoutResult(failed=list(ids))
    else:
        result = rt.poster.post_to_all(ids, frame.encode(), deadline=time.monotonic() + budget)
    logger.info(
        "chunk done",
        extra={
            "connections": len(ids),
            "delivered": result.delivered,
            "gone": len(result.gone),
            "failed": len(result.failed),
            "throttled": result.throttled,
        },
    )
    return answer_of(result)
