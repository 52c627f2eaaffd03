"""A fake user status relay for the client's tests: the wire format over real HTTP and WebSocket.

It runs aiohttp in a background thread: ``POST /newlog``, ``GET /recent-logs`` and
``GET /onlineusers`` on one port, the ``/?site=S`` WebSocket on another. It validates like the
real relay, stores in memory and broadcasts each new message to the site's sockets (timestamp
as a string of whole seconds). Like the real relay's ``$connect``, a WebSocket handshake for a
bad site is refused with 400 and ``{"error": ...}``. Tests can queue failure answers (HTTP
requests and handshakes separately), hold requests until released, drop every socket, and stop
and restart it on the same ports.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

SITE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LEVELS = {"debug", "info", "warning", "error", "critical"}
ALIASES = {"warn": "warning", "fatal": "critical"}
MAX_MESSAGE_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class StoredRecord:
    """One message as the fake stored it."""

    site: str
    message: str
    log_level: str
    timestamp: float
    id: str


@dataclass
class InjectedFailure:
    """An answer to give instead of handling the request."""

    status: int
    error: str
    retry_after: str | None = None


@dataclass
class _State:
    records: list[StoredRecord] = field(default_factory=list)
    newlog_attempts: int = 0
    failures: list[InjectedFailure] = field(default_factory=list)
    handshake_failures: list[InjectedFailure] = field(default_factory=list)
    handshake_attempts: int = 0
    # (path, Authorization header or None) of every HTTP request, in order.
    authorizations: list[tuple[str, str | None]] = field(default_factory=list)
    sockets: dict[str, set[web.WebSocketResponse]] = field(default_factory=dict)


class FakeRelay:
    """The relay's wire format on 127.0.0.1; use as a context manager or start()/stop()."""

    def __init__(self, *, ack_frames: bool = True) -> None:
        self.http_port = 0
        self.ws_port = 0
        self.ack_frames = ack_frames
        self._state = _State()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runners: list[web.AppRunner] = []
        self._gate: asyncio.Event | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FakeRelay:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def running(self) -> bool:
        return bool(self._runners)

    def start(self) -> None:
        """Listen (again) on the same ports as before, or on free ports the first time."""
        self._call(self._start())

    def stop(self) -> None:
        """Close every socket and stop listening; stored messages are kept."""
        self._call(self._stop())

    def shutdown(self) -> None:
        """Stop and end the background thread."""
        if self.running:
            self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    # -- test controls ------------------------------------------------------------------------

    @property
    def records(self) -> list[StoredRecord]:
        with self._lock:
            return list(self._state.records)

    @property
    def newlog_attempts(self) -> int:
        """Every ``POST /newlog`` that reached the fake, including failed ones."""
        with self._lock:
            return self._state.newlog_attempts

    @property
    def authorizations(self) -> list[tuple[str, str | None]]:
        """(path, Authorization header or None) of each /newlog and /recent-logs request."""
        with self._lock:
            return list(self._state.authorizations)

    def messages(self, site: str | None = None) -> list[str]:
        return [r.message for r in self.records if site is None or r.site == site]

    def fail_next(
        self, count: int, status: int, error: str = "injected", retry_after: str | None = None
    ) -> None:
        """Answer the next ``count`` requests with ``status`` and ``{"error": error}``."""
        with self._lock:
            self._state.failures.extend(
                InjectedFailure(status, error, retry_after) for _ in range(count)
            )

    def fail_next_handshakes(self, count: int, status: int, error: str = "injected") -> None:
        """Refuse the next ``count`` WebSocket handshakes: ``status``, ``{"error": error}``."""
        with self._lock:
            self._state.handshake_failures.extend(
                InjectedFailure(status, error) for _ in range(count)
            )

    @property
    def handshake_attempts(self) -> int:
        """Every WebSocket handshake that reached the fake, including refused ones."""
        with self._lock:
            return self._state.handshake_attempts

    def hold_requests(self) -> None:
        """Keep ``POST /newlog`` requests waiting until :meth:`release_requests`."""
        self._call(self._set_gate(hold=True))

    def release_requests(self) -> None:
        self._call(self._set_gate(hold=False))

    def drop_websockets(self) -> None:
        """Close every WebSocket while staying up, as an idle timeout or a redeploy would."""
        self._call(self._close_sockets())

    def connections(self, site: str) -> int:
        with self._lock:
            return len(self._state.sockets.get(site, ()))

    def send_frame(self, site: str, frame: dict[str, Any]) -> None:
        """Push a raw frame (an error, an acknowledgement) to every socket of ``site``."""
        self._call(self._broadcast(site, json.dumps(frame)))

    def store(self, site: str, message: str, level: str = "info", timestamp: float = 0.0) -> None:
        """Store a message directly, without broadcasting it (history that predates a test)."""
        with self._lock:
            self._append(site, message, level, timestamp or time.time())

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        """Poll ``predicate()`` until true or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return bool(predicate())

    # -- internals ----------------------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _start(self) -> None:
        if self._runners:
            return
        http_app = web.Application(client_max_size=MAX_BODY_BYTES)
        http_app.router.add_post("/newlog", self._newlog)
        http_app.router.add_get("/recent-logs", self._recent_logs)
        http_app.router.add_get("/onlineusers", self._online_users)
        ws_app = web.Application()
        ws_app.router.add_get("/", self._websocket)
        for app, attr in ((http_app, "http_port"), (ws_app, "ws_port")):
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", getattr(self, attr), reuse_address=True)
            await site.start()
            setattr(self, attr, runner.addresses[0][1])
            self._runners.append(runner)

    async def _stop(self) -> None:
        await self._close_sockets()
        if self._gate is not None:
            self._gate.set()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def _set_gate(self, *, hold: bool) -> None:
        if hold:
            self._gate = asyncio.Event()
        elif self._gate is not None:
            self._gate.set()
            self._gate = None

    async def _close_sockets(self) -> None:
        with self._lock:
            sockets = [ws for group in self._state.sockets.values() for ws in group]
        for ws in sockets:
            await ws.close(code=1001, message=b"going away")

    async def _broadcast(self, site: str, text: str) -> None:
        with self._lock:
            sockets = list(self._state.sockets.get(site, ()))
        for ws in sockets:
            if not ws.closed:
                await ws.send_str(text)

    def _append(self, site: str, message: str, level: str, timestamp: float) -> StoredRecord:
        record = StoredRecord(
            site, message, level, timestamp, f"{timestamp:017.6f}#{len(self._state.records):06d}"
        )
        self._state.records.append(record)
        return record

    def _take_failure(self) -> web.Response | None:
        with self._lock:
            failure = self._state.failures.pop(0) if self._state.failures else None
        if failure is None:
            return None
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
        body: dict[str, Any] = {"error": failure.error}
        if failure.status == 500:
            body["request_id"] = "fake-request-id"
        return web.json_response(body, status=failure.status, headers=headers)

    async def _newlog(self, request: web.Request) -> web.Response:
        with self._lock:
            self._state.newlog_attempts += 1
            self._state.authorizations.append((request.path, request.headers.get("Authorization")))
        gate = self._gate
        if gate is not None:
            await gate.wait()
        failure = self._take_failure()
        if failure is not None:
            return failure
        raw = await request.read()
        if len(raw) > MAX_BODY_BYTES:
            return _error(413, "request body too large")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "body must be a JSON object")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        site = body.get("site")
        if not isinstance(site, str) or not SITE.match(site):
            return _error(400, "site must be 1-64 letters, digits, '-' or '_'")
        message = body.get("log_message")
        if not isinstance(message, str) or not message:
            return _error(400, "log_message must be a non-empty string")
        if len(message.encode("utf-8")) > MAX_MESSAGE_BYTES:
            return _error(400, "log_message must be at most 16 KiB")
        level = body.get("log_level", "info")
        level = ALIASES.get(str(level).lower(), str(level).lower())
        if level not in LEVELS:
            return _error(400, "log_level must be one of debug, info, warning, error, critical")
        timestamp = body.get("timestamp", time.time())
        if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
            return _error(400, "timestamp must be a number of unix seconds")
        with self._lock:
            record = self._append(site, message, level, float(timestamp))
        frame = {
            "site": site,
            "message": message,
            "log_level": level,
            "timestamp": str(int(record.timestamp)),
        }
        await self._broadcast(site, json.dumps(frame))
        return web.json_response(
            {
                "site": site,
                "message": message,
                "log_level": level,
                "timestamp": record.timestamp,
                "id": record.id,
                "ttl": int(record.timestamp) + 86400,
            }
        )

    async def _recent_logs(self, request: web.Request) -> web.Response:
        with self._lock:
            self._state.authorizations.append((request.path, request.headers.get("Authorization")))
        failure = self._take_failure()
        if failure is not None:
            return failure
        site = request.query.get("site", "")
        if not SITE.match(site):
            return _error(400, "site must be 1-64 letters, digits, '-' or '_'")
        try:
            after = float(request.query.get("after_time", time.time() - 86400))
            limit = int(request.query.get("limit", "1000"))
        except ValueError:
            return _error(400, "after_time and limit must be numbers")
        if not 1 <= limit <= 1000:
            return _error(400, "limit must be 1-1000")
        with self._lock:
            matching = [r for r in self._state.records if r.site == site and r.timestamp > after]
        matching.sort(key=lambda r: r.timestamp)
        return web.json_response(
            [
                {
                    "site": r.site,
                    "message": r.message,
                    "log_level": r.log_level,
                    "timestamp": r.timestamp,
                }
                for r in matching[:limit]
            ]
        )

    async def _online_users(self, request: web.Request) -> web.Response:
        site = request.query.get("site", "")
        return web.json_response({"site": site, "connections": self.connections(site)})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        site = request.query.get("site", "")
        with self._lock:
            self._state.handshake_attempts += 1
            failures = self._state.handshake_failures
            failure = failures.pop(0) if failures else None
        if failure is not None:
            return _error(failure.status, failure.error)
        if not SITE.match(site):
            return _error(400, "site must be 1-64 letters, digits, '-' or '_'")
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        with self._lock:
            self._state.sockets.setdefault(site, set()).add(ws)
        try:
            if self.ack_frames:
                await ws.send_json({"action": "subscribed", "site": site})
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await ws.send_json({"action": "ignored"})
        finally:
            with self._lock:
                self._state.sockets.get(site, set()).discard(ws)
        return ws


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
