"""Entry point of the broadcaster: DynamoDB stream records of the messages table.

For each INSERT, in stream order: read every live connection of the message's site, post the
frame ``{"site", "message", "log_level", "timestamp": "<whole seconds>"}`` to all of them at
once, and forget connections that answer 410 Gone, unless they connected less than
``CONNECT_GRACE_SECONDS`` ago (their ``$connect`` may still be completing: they are posted to
again after short waits, and kept). A post that is throttled (429) is retried
until the invocation's deadline, one that fails a bounded number of times (counted in the
``batch done`` log: ``throttled``, ``failed``); one connection's failure never stops the others.

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

from userstatus import deadline
from userstatus.errors import RelayError
from userstatus.logs import bind_request_id
from userstatus.management_api import FanoutResult
from userstatus.model import Message, validate_site
from userstatus.runtime import Runtime, runtime
from userstatus.store import Connection, message_from_item

logger = logging.getLogger("userstatus.broadcast")

# Stop posting this long before the function's timeout, to log and report the batch; records
# not started by then are reported for retry, so a timeout never replays delivered records.
TIME_RESERVE_SECONDS = 5.0
# API Gateway answers 410 Gone to a post for a connection whose $connect has not completed
# ("A message was posted to the WebSocket API before the connection was established",
# repost.aws/knowledge-center/410-gone-api-gateway). The $connect handler writes the row before
# API Gateway completes the handshake, so a broadcast in that window sees a 410 for a viewer
# about to be connected. A $connect lasts at most API Gateway's 29 s integration timeout
# (docs.aws.amazon.com/apigateway/latest/developerguide/limits.html), and ``connected_at`` is
# in whole seconds: a 410 from a connection younger than 30 s is not a goodbye. Its row is kept,
# and the post is tried again after the waits below (0.5 s in all, within the invocation's
# time); only older connections answering 410 are forgotten.
CONNECT_GRACE_SECONDS = 30
GONE_RETRY_WAITS = (0.05, 0.15, 0.3)
LOGGED_SITES = 10
# Young connections still answering 410 after the waits, with when they were given up on. The
# next invocations of this container post to them once and wait no more for them (a client that
# vanished seconds after connecting would otherwise cost every broadcast the waits, until its
# $disconnect or TTL removes the row). Pruned once they are older than the grace.
_gave_up_on: dict[str, float] = {}


@deadline.within_time
def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Broadcast a batch of stream records; report the records to retry."""
    bind_request_id(context)
    return broadcast_batch(runtime(), event)


def broadcast_batch(rt: Runtime, event: Mapping[str, Any]) -> dict[str, Any]:
    """The handler's work, given the container's runtime."""
    records = list(event.get("Records") or [])
    totals = {
        "records": len(records),
        "messages": 0,
        "delivered": 0,
        "gone": 0,
        "failed": 0,
        "connecting": 0,
        "skipped": 0,
        "throttled": 0,
        "invocations": 0,
        "invocations_failed": 0,
    }
    connections_of_site: dict[str, list[Connection]] = {}
    failed_from: int | None = None

    for index, record in enumerate(records):
        if record.get("eventName") != "INSERT":
            continue
        stop_at = _stop_posting_at()
        if stop_at is not None and stop_at <= time.monotonic():
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
                connections_of_site[message.site] = rt.connections.connections(
                    message.site, now=time.time()
                )
            connections = connections_of_site[message.site]
            result = _post_to_site(
                rt, [c.connection_id for c in connections], frame, stop_at, totals
            )
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
        totals["throttled"] += result.throttled
        if result.gone:
            gone = set(result.gone)
            now = time.time()
            young = [
                c.connection_id
                for c in connections
                if c.connection_id in gone and c.connected_at > now - CONNECT_GRACE_SECONDS
            ]
            late = _retry_connecting(rt, young, frame, stop_at, now=now)
            totals["delivered"] += late.delivered
            totals["failed"] += len(late.failed)
            totals["connecting"] += len(young)
            # Connections still gone leave this invocation's list; only old ones are deleted.
            still_gone = (gone - set(young)) | set(late.gone)
            connections_of_site[message.site] = [
                c for c in connections if c.connection_id not in still_gone
            ]
            for connection in connections:
                if connection.connection_id in gone and connection.connection_id not in young:
                    totals["gone"] += _forget(rt, message.site, connection, now=now)

    failures = [
        {"itemIdentifier": record.get("dynamodb", {}).get("SequenceNumber", "")}
        for record in (records[failed_from:] if failed_from is not None else [])
    ]
    sites = sorted(connections_of_site)
    logger.info(
        "batch done",
        extra={
            **totals,
            "retried": len(failures),
            # The sites broadcast to (the first few), to find a site's batches in the logs.
            "sites": sites[:LOGGED_SITES],
        },
    )
    return {"batchItemFailures": failures}


def _stop_posting_at() -> float | None:
    """When this invocation must stop posting (``time.monotonic()``), keeping a reserve to
    report the batch; None when the context does not tell the remaining time."""
    left = deadline.seconds_left()
    if left is None:
        return None
    return time.monotonic() + left - TIME_RESERVE_SECONDS


def _post_to_site(
    rt: Runtime, ids: list[str], frame: bytes, stop_at: float | None, totals: dict[str, int]
) -> FanoutResult:
    """Post ``frame`` to a site's connections: all by this invocation, or, for a site of more
    than ``FANOUT_CHUNK_CONNECTIONS``, the first chunk here and each further chunk by an
    invocation of the fan-out function, all at once (``userstatus.fanout``). Returns when every
    chunk is done, so the site's next message starts after this one everywhere."""
    size = rt.settings.fanout_chunk_connections
    # The poster first: if it cannot be built, nothing has been posted and the record is
    # retried whole, not after the other chunks went out.
    poster = rt.poster
    invoker = rt.fanout if len(ids) > size else None
    if invoker is None:
        return poster.post_to_all(ids, frame, deadline=stop_at)
    chunks = [ids[start : start + size] for start in range(size, len(ids), size)]
    pending = invoker.start(chunks, frame, deadline=stop_at)
    result = poster.post_to_all(ids[:size], frame, deadline=stop_at)
    others, failed_invocations = pending.wait()
    totals["invocations"] += len(chunks)
    totals["invocations_failed"] += failed_invocations
    result.add(others)
    return result


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


def _retry_connecting(
    rt: Runtime, connection_ids: list[str], frame: bytes, stop_at: float | None, *, now: float
) -> FanoutResult:
    """Post again, after short waits, to connections younger than ``CONNECT_GRACE_SECONDS``
    that answered 410: their ``$connect`` may still be completing. What became of them.
    Connections this container already gave up on are not waited for again."""
    for connection_id, since in list(_gave_up_on.items()):
        if since <= now - CONNECT_GRACE_SECONDS:
            del _gave_up_on[connection_id]
    result = FanoutResult()
    result.gone = [i for i in connection_ids if i in _gave_up_on]
    pending = [i for i in connection_ids if i not in _gave_up_on]
    waiting = len(pending)
    for wait in GONE_RETRY_WAITS:
        if not pending or (stop_at is not None and time.monotonic() + wait >= stop_at):
            break
        time.sleep(wait)
        attempt = rt.poster.post_to_all(pending, frame, deadline=stop_at)
        result.delivered += attempt.delivered
        result.failed += attempt.failed
        pending = attempt.gone
    for connection_id in pending:
        _gave_up_on[connection_id] = now
    result.gone += pending
    if waiting:
        logger.info(
            "posted again to connections still connecting",
            extra={"connecting": waiting, "still_gone": len(pending)},
        )
    return result


def _forget(rt: Runtime, site: str, connection: Connection, *, now: float) -> int:
    try:
        removed = rt.connections.remove_if_connected_before(
            site, connection, cutoff=now - CONNECT_GRACE_SECONDS
        )
    except (RelayError, ClientError):
        logger.warning(
            "could not forget a gone connection; its row expires by TTL",
            extra={"site": site, "connection_id": connection.connection_id},
        )
        return 0
    return int(removed)
