"""``UserStatusHandler``: a logging handler that streams records to the relay.

``emit()`` only formats the record and appends it to a bounded in-memory queue, so the
application is never blocked on the network and never sees an exception from it. A background
thread posts queued records one by one over a kept-alive connection. While the relay is
unreachable or throttled the thread keeps retrying the oldest record with capped backoff, so a
short outage loses nothing; if the queue fills meanwhile the oldest record is dropped and
counted, the relay is sent a warning saying how many were dropped, and ``close()`` reports the
totals on stderr.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from userstatus_client.http_api import (
    RelayClient,
    RelayRejectedError,
    RelayUnavailableError,
    RetryPolicy,
    UserStatusError,
    resolve_url,
)
from userstatus_client.levels import relay_level_for

__all__ = ["HandlerStats", "UserStatusHandler"]

SITE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # whole string: use fullmatch
MAX_MESSAGE_BYTES = 16 * 1024
_TRUNCATION_MARK = " …[truncated]"
_REJECTION_WARNING_INTERVAL = 30.0
_DROP_NOTICE_INTERVAL = 10.0


@dataclass(frozen=True)
class HandlerStats:
    """Counters of a handler: ``sent + dropped + rejected + abandoned + queued`` is the number
    of records it accepted. ``queued`` is what is still waiting, the request in flight
    included; once ``close()`` has returned it is at most 1: a request still in flight at the
    close deadline, counted as ``sent``, ``rejected`` or ``abandoned`` once it ends."""

    sent: int
    dropped: int
    rejected: int
    abandoned: int
    queued: int


@dataclass(frozen=True)
class _Item:
    message: str
    level: str
    timestamp: float


class UserStatusHandler(logging.Handler):
    """Send log records to the relay as status messages of ``site``, without blocking.

    - ``queue_size``: records held while the relay is slow or down; when full, the oldest is
      dropped and counted in ``dropped``.
    - ``close_timeout``: how long ``close()`` (and ``flush()``) wait for queued records to go
      out; what is left then is counted in ``abandoned``. At interpreter exit logging calls
      ``flush()`` then ``close()``: the two share one deadline, so exit waits at most
      ``close_timeout`` in total, a request in flight included.
    - ``timeout``: per-request socket timeout; ``max_backoff``: longest wait between retries
      while the relay is unavailable.
    - ``key``: the site's publish key (default ``$USERSTATUS_KEY``), for stages that check keys;
      a refused key counts as rejected records, like any 4xx.

    Levels map to the relay's five levels, rounding down; the handler's formatter makes the
    message text (default ``%(message)s``, plus the traceback if any) and its level filters.
    """

    def __init__(
        self,
        site: str,
        url: str | None = None,
        level: int | str = logging.NOTSET,
        *,
        queue_size: int = 10_000,
        close_timeout: float = 5.0,
        timeout: float = 5.0,
        max_backoff: float = 10.0,
        key: str | None = None,
    ) -> None:
        super().__init__(level)
        if not SITE_PATTERN.fullmatch(site):
            raise ValueError(f"site must be 1-64 letters, digits, '-' or '_', got {site!r}")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.site = site
        self.url = resolve_url(url)
        self.queue_size = queue_size
        self.close_timeout = close_timeout
        self._timeout = timeout
        self._max_backoff = max_backoff
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = False
        self._closing = False
        self._worker_running = True
        self._flush_deadline: float | None = None
        self._abort = threading.Event()
        self._sent = 0
        self._dropped = 0
        self._dropped_reported = 0
        self._rejected = 0
        self._abandoned = 0
        self._relay_down_since: float | None = None
        self._last_rejection_warning = -_REJECTION_WARNING_INTERVAL
        self._last_drop_notice = -_DROP_NOTICE_INTERVAL
        self._client = RelayClient(self.url, timeout=timeout, retry=RetryPolicy(retries=0), key=key)
        self._worker = threading.Thread(
            target=self._run, name=f"userstatus-handler-{site}", daemon=True
        )
        self._worker.start()

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full (or emitted after close)."""
        return self._dropped

    def stats(self) -> HandlerStats:
        """A consistent snapshot of the counters."""
        with self._cond:
            return HandlerStats(
                sent=self._sent,
                dropped=self._dropped,
                rejected=self._rejected,
                abandoned=self._abandoned,
                queued=len(self._queue) + (1 if self._in_flight else 0),
            )

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the formatted record; never blocks on the network, never raises."""
        if threading.current_thread() is self._worker:
            return  # a record logged while sending would feed back into the handler
        try:
            item = _Item(
                message=_fit(self.format(record)),
                level=relay_level_for(record.levelno),
                timestamp=record.created,
            )
            with self._cond:
                if self._closing:
                    self._dropped += 1
                    return
                if len(self._queue) >= self.queue_size:
                    self._queue.popleft()
                    self._dropped += 1
                self._queue.append(item)
                self._flush_deadline = None
                self._cond.notify()
        except Exception:  # noqa: BLE001 - logging's contract: report, never raise
            self.handleError(record)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is sent, at most ``timeout`` (``close_timeout``).

        A ``close()`` after this call, with no record logged in between, ends at most
        ``close_timeout`` after this call began: logging's shutdown (flush, then close) waits
        ``close_timeout`` in total, not twice.
        """
        started = time.monotonic()
        deadline = started + (self.close_timeout if timeout is None else timeout)
        with self._cond:
            self._flush_deadline = started + self.close_timeout
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._worker_running:
                    return
                self._cond.wait(remaining)

    def close(self) -> None:
        """Send what is queued until the deadline, then stop the thread and report the totals.

        The deadline is ``close_timeout`` from now, or from the start of a ``flush()`` made
        since the last record was logged. At the deadline close tells the sending thread to
        stop, counts the queued records as ``abandoned`` and returns without waiting for a
        request in flight: that record stays in ``queued`` until the thread (a daemon) sees the
        request answered or failed (socket timeout ``timeout``), or the interpreter exits.
        """
        with self._cond:
            already_closing = self._closing
            self._closing = True
            deadline = self._flush_deadline
            if deadline is None:
                deadline = time.monotonic() + self.close_timeout
            self._cond.notify_all()
            if not already_closing:
                while self._worker_running:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._worker_running:
                    self._abort.set()  # the thread stops retrying and takes nothing more
                    self._abandoned += len(self._queue)
                    self._queue.clear()
                    self._cond.notify_all()
        if not already_closing:
            self._report_totals()
        super().close()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while True:
                        if self._abort.is_set():
                            return
                        unreported_drops = self._take_unreported_drops()
                        if unreported_drops or self._queue or self._closing:
                            break
                        self._cond.wait()
                    if not unreported_drops and not self._queue:
                        return
                    item = self._queue.popleft() if self._queue else None
                    self._in_flight = item is not None
                if unreported_drops:
                    self._deliver(_drop_notice(unreported_drops), counted=False)
                if item is None:
                    continue
                outcome = self._deliver(item, counted=True)
                with self._cond:
                    self._in_flight = False
                    if outcome == "abandoned":
                        self._abandoned += 1 + len(self._queue)
                        self._queue.clear()
                    self._cond.notify_all()
        finally:
            self._client.close()
            with self._cond:
                self._in_flight = False
                self._worker_running = False
                self._cond.notify_all()

    def _take_unreported_drops(self) -> int:
        """Drops to announce now: at once, then at most every interval or once the queue drains.

        Called with the lock held.
        """
        unreported = self._dropped - self._dropped_reported
        if not unreported:
            return 0
        now = time.monotonic()
        if self._queue and now - self._last_drop_notice < _DROP_NOTICE_INTERVAL:
            return 0
        self._dropped_reported = self._dropped
        self._last_drop_notice = now
        return unreported

    def _deliver(self, item: _Item, *, counted: bool) -> str:
        """Post one item, retrying transient failures until sent, rejected or aborted."""
        failures = 0
        while True:
            try:
                self._client.send(self.site, item.message, item.level, item.timestamp)
            except RelayRejectedError as exc:
                if counted:
                    with self._cond:
                        self._rejected += 1
                now = time.monotonic()
                if now - self._last_rejection_warning >= _REJECTION_WARNING_INTERVAL:
                    self._last_rejection_warning = now
                    _warn(f"relay rejected a log record, skipped it: {exc.server_message}")
                return "rejected"
            except (RelayUnavailableError, UserStatusError) as exc:
                if self._relay_down_since is None:
                    self._relay_down_since = time.monotonic()
                    _warn(f"{exc}; holding records and retrying")
                delay = min(self._max_backoff, 0.2 * (2 ** min(failures, 10)))
                failures += 1
                if self._abort.wait(random.uniform(delay / 2, delay)):
                    return "abandoned"
                continue
            if self._relay_down_since is not None:
                down_for = time.monotonic() - self._relay_down_since
                self._relay_down_since = None
                _warn(f"relay reachable again after {down_for:.1f} s")
            if counted:
                with self._cond:
                    self._sent += 1
            return "sent"

    def _report_totals(self) -> None:
        stats = self.stats()
        if stats.dropped or stats.rejected or stats.abandoned or stats.queued:
            in_flight = f" ({stats.queued} of them still in flight)" if stats.queued else ""
            _warn(
                f"handler for site {self.site!r} closed: {stats.sent} sent, "
                f"{stats.dropped} dropped (queue full), {stats.rejected} rejected, "
                f"{stats.abandoned + stats.queued} not sent before the close timeout{in_flight}"
            )


def _fit(message: str) -> str:
    """Truncate to the relay's 16 KiB limit (UTF-8), and never send an empty message."""
    if not message:
        return "(empty log message)"
    encoded = message.encode("utf-8")
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return message
    budget = MAX_MESSAGE_BYTES - len(_TRUNCATION_MARK.encode("utf-8"))
    return encoded[:budget].decode("utf-8", "ignore") + _TRUNCATION_MARK


def _drop_notice(count: int) -> _Item:
    noun = "record" if count == 1 else "records"
    return _Item(
        message=f"userstatus: dropped {count} log {noun} (client queue full)",
        level="warning",
        timestamp=time.time(),
    )


def _warn(text: str) -> None:
    """Tell the operator on stderr; never through logging, which may be routed to us."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # closed or missing stderr
        sys.stderr.write(f"userstatus: {text}\n")
