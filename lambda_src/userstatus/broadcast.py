"""Entry point of the broadcaster: DynamoDB stream records of the messages table.

For each INSERT, in stream order: read every live connection of the message's site, post the
frame ``{"site", "message", "log_level", "timestamp": "<whole seconds>"}`` to all of them at
once, and forget connections that answer 410 Gone. A post that is throttled or fails is retried
a bounded number of times; one connection's failure never stops the others.

Partial batch failures: if a record cannot be processed (the connections query fails), or the
invocation is about to run out of time before it starts, it and every record after it are
reported in ``batchItemFailures`` and nothing after it is delivered, so the retry resumes there
and no connection gets a message twice (a function timeout would replay the whole batch). Posts
of a record still unfinished at the deadline count as failed, and are not sent again. A
malformed record is logged and skipped (retrying cannot mend it). Other event types (MODIFY,
REMOVE: TTL deletions) are ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from userstatus.errors import RelayError
from userstatus.logs import bind_request_id
from userstatus.model import Message, validate_site
from userstatus.runtime import Runtime, runtime
from userstatus.store import message_from_item

logger = logging.getLogger("userstatus.broadcast")

# Stop posting this long before the function's timeout, to log and report the batch; records
# not started by then are reported for retry, so a timeout never replays delivered records.
TIME_RESERVE_SECONDS = 5.0


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Broadcast a batch of stream records; report the records to retry."""
    bind_request_id(context)
    rt = runtime()
    records = list(event.get("Records") or [])
    totals = {
        "records": len(records),
        "messages": 0,
        "delivered": 0,
        "gone": 0,
        "failed": 0,
        "skipped": 0,
    }
    connections_of_site: dict[str, list[str]] = {}
    failed_from: int | None = None

    for index, record in enumerate(records):
        if record.get("eventName") != "INSERT":
            continue
        deadline = _deadline(context)
        if deadline is not None and deadline <= time.monotonic():
            logger.warning(
                "out of time; this record and the ones after it will be retried",
                extra={"index": index},
            )
            failed_from = index
            break
        parsed = _frame_of(record)
        if parsed is None:
            totals["skipped"] += 1
            continue
        message, frame = parsed
        try:
            if message.site not in connections_of_site:
                connections_of_site[message.site] = rt.connections.connection_ids(
                    message.site, now=time.time()
                )
            ids = connections_of_site[message.site]
            result = rt.poster.post_to_all(ids, frame, deadline=deadline)
        except Exception:
            logger.exception(
                "record failed; it and the records after it will be retried",
                extra={"site": message.site, "index": index},
            )
            failed_from = index
            break
        totals["messages"] += 1
        totals["delivered"] += result.delivered
        totals["failed"] += len(result.failed)
        if result.gone:
            gone = set(result.gone)
            connections_of_site[message.site] = [i for i in ids if i not in gone]
            for connection_id in result.gone:
                totals["gone"] += _forget(rt, message.site, connection_id)

    failures = [
        {"itemIdentifier": record.get("dynamodb", {}).get("SequenceNumber", "")}
        for record in (records[failed_from:] if failed_from is not None else [])
    ]
    logger.info("batch done", extra={**totals, "retried": len(failures)})
    return {"batchItemFailures": failures}


def _deadline(context: object) -> float | None:
    """When this invocation must stop posting (``time.monotonic()``), keeping a reserve to
    report the batch; None when the context does not tell the remaining time."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return time.monotonic() + float(remaining()) / 1000 - TIME_RESERVE_SECONDS


def _frame_of(record: Mapping[str, Any]) -> tuple[Message, bytes] | None:
    """The message of an INSERT record and its frame; None (logged) if the record is malformed."""
    try:
        message = message_from_item(record["dynamodb"]["NewImage"])
        validate_site(message.site)
        frame = message.broadcast_frame()
    except Exception:
        logger.exception(
            "malformed stream record skipped",
            extra={"sequence_number": record.get("dynamodb", {}).get("SequenceNumber")},
        )
        return None
    return message, frame


def _forget(rt: Runtime, site: str, connection_id: str) -> int:
    try:
        rt.connections.remove(site, connection_id)
    except (RelayError, ClientError):
        logger.warning(
            "could not forget a gone connection; its row expires by TTL",
            extra={"site": site, "connection_id": connection_id},
        )
        return 0
    return 1
