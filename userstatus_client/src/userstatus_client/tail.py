"""Follow a site: recent history from ``/recent-logs``, then live messages over the WebSocket.

The WebSocket ``{ws_base}/?site=S`` delivers each new message of S as a text frame
``{"site", "message", "log_level", "timestamp"}`` (timestamp a string of whole seconds). Frames
with an ``error`` key are reported on stderr; frames with an ``action`` key are
acknowledgements and are skipped.

The socket is opened *before* history is fetched, so nothing stored in between is missed; a
message that shows up both in the history and live is printed once. After a drop the follower
reconnects with capped backoff and fetches the messages stored while it was away. A handshake
or history request the relay refuses with a 4xx other than 429 (say 400 for a bad site) is
final: it raises :class:`RelayRejectedError` with the server's reason instead of reconnecting.

Needs the optional ``websockets`` package (``pip install 'userstatus-client[follow]'``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import re
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from userstatus_client.http_api import (
    LogEntry,
    RelayClient,
    RelayRejectedError,
    RetryPolicy,
    UserStatusError,
    _decode_json,
    _server_message,
    check_base_url,
)

if TYPE_CHECKING:
    from websockets.exceptions import InvalidStatus

__all__ = [
    "DEFAULT_WS_URL",
    "WS_URL_ENV",
    "follow",
    "format_entry",
    "parse_duration",
    "resolve_ws_url",
]

WS_URL_ENV = "USERSTATUS_WS_URL"
DEFAULT_WS_URL = "ws://127.0.0.1:3001"
"""The local relay's WebSocket started by ``make dev``."""

GAP_MARGIN_SECONDS = 5.0
"""After a reconnect, history is fetched from this long before the drop."""

LIVE_DUPLICATE_WINDOW_SECONDS = 15.0
"""How long after a history fetch a live frame may repeat a message of that history."""

_LEVEL_COLOURS = {
    "debug": "\033[2m",
    "info": "\033[36m",
    "warning": "\033[33m",
    "error": "\033[31m",
    "critical": "\033[1;31m",
}
_RESET = "\033[0m"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def resolve_ws_url(ws_url: str | None = None) -> str:
    """The WebSocket base URL: the argument, else ``$USERSTATUS_WS_URL``, else the local relay."""
    return (ws_url or os.environ.get(WS_URL_ENV) or DEFAULT_WS_URL).rstrip("/")


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``15m``, ``1h``, ``2d`` or ``1w``; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (examples: 90s, 15m, 1h, 2d)")
    amount, unit = match.group(1, 2)
    return float(amount) * _UNIT_SECONDS[str(unit).lower()]


def format_entry(entry: LogEntry, *, colour: bool = False, utc: bool = False) -> str:
    """One message as ``hh:mm LEVEL message``; continuation lines are indented under it."""
    moment = time.gmtime(entry.timestamp) if utc else time.localtime(entry.timestamp)
    level = entry.log_level.upper()
    padded = f"{level:<8}"
    if colour:
        padded = _LEVEL_COLOURS.get(entry.log_level.lower(), "") + padded + _RESET
    prefix = f"{moment.tm_hour:02d}:{moment.tm_min:02d} {padded} "
    indent = " " * (6 + 8 + 1)
    return prefix + entry.message.rstrip("\n").replace("\n", "\n" + indent)


class _MessageMultiset:
    """Recently seen messages, matched by site, level and text with timestamps within 1 s."""

    def __init__(self, capacity: int = 5000) -> None:
        self._timestamps: dict[tuple[str, str, str], list[float]] = {}
        self._order: deque[tuple[tuple[str, str, str], float]] = deque()
        self._capacity = capacity

    def __len__(self) -> int:
        return len(self._order)

    def add(self, entry: LogEntry) -> None:
        key = _key(entry)
        self._timestamps.setdefault(key, []).append(entry.timestamp)
        self._order.append((key, entry.timestamp))
        while len(self._order) > self._capacity:
            old_key, old_ts = self._order.popleft()
            self._discard(old_key, old_ts)

    def take(self, entry: LogEntry) -> bool:
        """Remove one matching message; False when there is none."""
        key = _key(entry)
        for ts in self._timestamps.get(key, ()):
            if abs(ts - entry.timestamp) <= 1.0:
                self._discard(key, ts)
                self._order.remove((key, ts))
                return True
        return False

    def copy(self) -> _MessageMultiset:
        clone = _MessageMultiset(self._capacity)
        for key, ts in self._order:
            clone._timestamps.setdefault(key, []).append(ts)
            clone._order.append((key, ts))
        return clone

    def clear(self) -> None:
        self._timestamps.clear()
        self._order.clear()

    def _discard(self, key: tuple[str, str, str], ts: float) -> None:
        stamps = self._timestamps[key]
        stamps.remove(ts)
        if not stamps:
            del self._timestamps[key]


def _key(entry: LogEntry) -> tuple[str, str, str]:
    return (entry.site, entry.log_level.lower(), entry.message)


class _Printer:
    """Prints each message once, whether it comes from history, live, or both."""

    def __init__(self, out: TextIO, *, colour: bool, utc: bool) -> None:
        self._out = out
        self._colour = colour
        self._utc = utc
        self._printed = _MessageMultiset()
        self._expected_live = _MessageMultiset()
        self._expected_until = 0.0

    def history(self, entries: Iterable[LogEntry]) -> None:
        already_printed = self._printed.copy()
        for entry in entries:
            if already_printed.take(entry):
                continue
            self._print(entry)
            self._expected_live.add(entry)
        self._expected_until = time.monotonic() + LIVE_DUPLICATE_WINDOW_SECONDS

    def live(self, entry: LogEntry) -> None:
        if time.monotonic() > self._expected_until:
            self._expected_live.clear()
        if self._expected_live.take(entry):
            return
        self._print(entry)

    def _print(self, entry: LogEntry) -> None:
        self._printed.add(entry)
        self._out.write(format_entry(entry, colour=self._colour, utc=self._utc) + "\n")
        self._out.flush()


def _ws_uri(ws_url: str, site: str) -> str:
    return f"{ws_url.rstrip('/')}/?{urllib.parse.urlencode({'site': site})}"


async def follow(
    site: str,
    *,
    url: str | None = None,
    ws_url: str | None = None,
    since: float | None = 3600.0,
    limit: int | None = None,
    out: TextIO,
    err: TextIO,
    colour: bool = False,
    utc: bool = False,
    reconnect_delay: float = 0.5,
    max_reconnect_delay: float = 15.0,
) -> None:
    """Print the last ``since`` seconds of ``site`` (none if 0 or None), then follow it live.

    Runs until cancelled; connection problems, 5xx and 429 are reported on ``err`` and retried
    forever. Raises :class:`RelayRejectedError` when the relay refuses the handshake or the
    history request with any other 4xx, and ValueError for a URL that is not ws:// or wss://.
    """
    try:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException
    except ImportError as exc:
        raise UserStatusError(
            "following needs the websockets package: pip install 'userstatus-client[follow]'"
        ) from exc

    try:
        base = check_base_url(resolve_ws_url(ws_url), ("ws", "wss"))
    except ValueError as exc:
        raise ValueError(f"relay WebSocket URL {exc}") from None
    uri = _ws_uri(base, site)
    client = RelayClient(url, retry=RetryPolicy(retries=1))
    printer = _Printer(out, colour=colour, utc=utc)
    history_after: float | None = time.time() - since if since else None
    first_connection = True
    dropped_at: float | None = None
    delay = reconnect_delay
    try:
        while True:
            try:
                async with connect(uri, open_timeout=10, max_size=2**20) as websocket:
                    if first_connection:
                        after = history_after
                    else:
                        err.write(f"userstatus: reconnected to {uri}\n")
                        err.flush()
                        after = (dropped_at or time.time()) - GAP_MARGIN_SECONDS
                    if after is not None:
                        entries = await asyncio.get_running_loop().run_in_executor(
                            None, functools.partial(client.recent_logs, site, after, limit)
                        )
                        printer.history(entries)
                    first_connection = False
                    dropped_at = None
                    delay = reconnect_delay
                    async for frame in websocket:
                        entry = _entry_from_frame(frame, site, err)
                        if entry is not None:
                            printer.live(entry)
                    reason = "connection closed by the relay"
            except (InvalidURI, RelayRejectedError):
                raise
            except InvalidStatus as exc:
                status = exc.response.status_code
                if 400 <= status < 500 and status != 429:
                    raise RelayRejectedError(status, _handshake_reason(exc)) from None
                reason = f"{exc}: {_handshake_reason(exc)}"
            except (OSError, WebSocketException, asyncio.TimeoutError, UserStatusError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if not first_connection and dropped_at is None:
                dropped_at = time.time()
            wait = random.uniform(delay / 2, delay)
            err.write(f"userstatus: {reason}; reconnecting in {wait:.1f} s\n")
            err.flush()
            await asyncio.sleep(wait)
            delay = min(max_reconnect_delay, delay * 2)
    finally:
        client.close()


def _handshake_reason(exc: InvalidStatus) -> str:
    """The server's reason for refusing a handshake (an ``InvalidStatus``): body, else phrase."""
    body = bytes(exc.response.body or b"")
    if body.strip():
        return _server_message(_decode_json(body), body)
    return str(exc.response.reason_phrase or "(no message)")


def _entry_from_frame(frame: str | bytes, site: str, err: TextIO) -> LogEntry | None:
    """The message in a frame, or None for acknowledgements, errors and other sites."""
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    try:
        obj: Any = json.loads(text)
    except ValueError:
        err.write(f"userstatus: ignoring a frame that is not JSON: {text[:80]!r}\n")
        return None
    if not isinstance(obj, dict):
        return None
    if "error" in obj:
        err.write(f"userstatus: relay error: {obj['error']}\n")
        err.flush()
        return None
    if "action" in obj:
        return None
    try:
        entry = LogEntry.from_json(obj)
    except UserStatusError as exc:
        err.write(f"userstatus: {exc}\n")
        return None
    return entry if entry.site == site else None
