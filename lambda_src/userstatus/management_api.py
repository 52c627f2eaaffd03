"""Posting to WebSocket connections through the API Gateway management API, concurrently.

One ``ConnectionPoster`` lives per container. It runs its own asyncio event loop and keeps a
pool of HTTP/1.1 keep-alive connections to the endpoint across invocations; a broadcast runs
``concurrency`` workers over them, each request signed with SigV4 (service ``execute-api``,
see ``userstatus.sigv4``). A boto3 ``apigatewaymanagementapi`` client costs about 2 ms of CPU
per post and threads add more; this path costs about 0.1 ms (see docs/performance.md).

Outcomes per connection: 200 delivered; 410 gone (the caller forgets it); 429 (throttled)
retried with jittered, capped exponential backoff until the fan-out's deadline (counted in
``throttled``); 5xx retried the same way, at most ``MAX_ATTEMPTS`` tries; a connection closed
before any answer is retried (the post was not taken). A timeout or a garbled answer is not retried:
the post may have been delivered, and sending it again could deliver it twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from userstatus.sigv4 import RequestSigner, payload_hash

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 1.0
# A throttled post waits at most this long before it is tried again. The account's bucket
# refills continuously, and a broadcast bigger than its burst is paced by it: posts that wait
# longer than the bucket needs leave tokens unused, which a site posting at the account's rate
# never gets back (B5 in docs/performance.md: with 1 s, a 10,000-viewer site fell behind by
# seconds; with 0.1 s its p99 stayed under 1 s). A 429 costs no token.
MAX_THROTTLED_BACKOFF_SECONDS = 0.1
# A post answered 429 is retried until the fan-out's deadline (the invocation's time), or this
# long when it has none. API Gateway throttles per account, 10,000 requests a second with a
# burst of 5,000 (docs.aws.amazon.com/apigateway/latest/developerguide/limits.html), and
# answers 429 beyond it: a broadcast bigger than the burst is slowed down, not cut short.
MAX_THROTTLED_SECONDS = 60.0
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_HEAD_BYTES = 64 * 1024

CredentialsProvider = Callable[[], Any]


@dataclass
class FanoutResult:
    """What became of one payload posted to many connections."""

    delivered: int = 0
    gone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # 429 answers received (each throttled post was tried again).
    throttled: int = 0

    def add(self, other: FanoutResult) -> None:
        """Count ``other``'s outcomes in this one (another chunk of the same broadcast)."""
        self.delivered += other.delivered
        self.gone += other.gone
        self.failed += other.failed
        self.throttled += other.throttled


class _NotSent(Exception):
    """The connection closed before any answer: the post was not taken."""


class _BadAnswer(Exception):
    """The answer could not be parsed."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


class ConnectionPoster:
    """Posts one payload to many connection ids with bounded concurrency and retries."""

    def __init__(
        self,
        endpoint: str,
        *,
        region: str,
        credentials: CredentialsProvider,
        concurrency: int = 64,
        timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(endpoint)
        https = parts.scheme == "https"
        self._host_header = parts.netloc
        self._hostname = parts.hostname or ""
        self._port = parts.port or (443 if https else 80)
        self._ssl = ssl.create_default_context() if https else None
        self._path_prefix = parts.path.rstrip("/")
        self._region = region
        self._credentials = credentials
        self._concurrency = concurrency
        self._timeout = timeout
        self._signers: dict[Any, RequestSigner] = {}
        self._idle: list[_Connection] = []
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()

    def post_to_all(
        self, connection_ids: Iterable[str], payload: bytes, *, deadline: float | None = None
    ) -> FanoutResult:
        """Post ``payload`` to every connection; never raises for a single connection.

        ``deadline`` (a ``time.monotonic()`` value) bounds the whole fan-out: posts not
        finished by then count as failed (they are not sent again, so none is sent twice).
        """
        ids = list(connection_ids)
        if not ids:
            return FanoutResult()
        signer = self._signer()
        with self._lock:
            return self._loop.run_until_complete(self._fan_out(ids, payload, signer, deadline))

    def close(self) -> None:
        """Close pooled connections and the event loop."""
        with self._lock:
            for connection in self._idle:
                connection.close()
            self._idle.clear()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    def _signer(self) -> RequestSigner:
        credentials = self._credentials()
        signer = self._signers.get(credentials)
        if signer is None:
            signer = RequestSigner(
                credentials.access_key,
                credentials.secret_key,
                credentials.token,
                region=self._region,
            )
            self._signers = {credentials: signer}
        return signer

    async def _fan_out(
        self, ids: list[str], payload: bytes, signer: RequestSigner, deadline: float | None
    ) -> FanoutResult:
        pending = deque(ids)
        result = FanoutResult()
        body_hash = payload_hash(payload)
        loop = asyncio.get_running_loop()
        # The event loop's clock is time.monotonic(), as the caller's deadline.
        stop_at = deadline if deadline is not None else loop.time() + 10 * 365 * 86400

        async def drain() -> None:
            while pending:
                connection_id = pending.popleft()
                try:
                    async with asyncio.timeout_at(stop_at):
                        status = await self._post_with_retries(
                            signer, connection_id, payload, body_hash, result
                        )
                except TimeoutError:
                    logger.warning("post out of time", extra={"connection_id": connection_id})
                    status = 0
                except Exception:
                    logger.exception("post failed", extra={"connection_id": connection_id})
                    status = 0
                if status == 200:
                    result.delivered += 1
                elif status == 410:
                    result.gone.append(connection_id)
                else:
                    result.failed.append(connection_id)

        await asyncio.gather(*(drain() for _ in range(min(self._concurrency, len(ids)))))
        await asyncio.sleep(0)  # let transports closed above finish closing
        return result

    async def _post_with_retries(
        self,
        signer: RequestSigner,
        connection_id: str,
        payload: bytes,
        body_hash: str,
        result: FanoutResult,
    ) -> int:
        status = 0
        attempt = 0  # tries that count against MAX_ATTEMPTS: every answer but a 429
        throttled = 0
        give_up_at: float | None = None
        while attempt < MAX_ATTEMPTS:
            if attempt or throttled:
                await asyncio.sleep(retry_delay(attempt + throttled, throttled=status == 429))
            try:
                # asyncio.timeout, not wait_for: wait_for wraps each post in a task of its own.
                async with asyncio.timeout(self._timeout):
                    status = await self._post(signer, connection_id, payload, body_hash)
            except _NotSent as error:
                logger.info(
                    "post retried",
                    extra={"connection_id": connection_id, "error": repr(error.__cause__)},
                )
                status = 0
                attempt += 1
                continue
            except (OSError, TimeoutError, _BadAnswer) as error:
                logger.warning(
                    "post failed", extra={"connection_id": connection_id, "error": repr(error)}
                )
                return 0
            if status == 429:
                # Throttled: the post was not taken, and the account's token bucket refills,
                # so it is tried again until the fan-out's deadline, not a number of times.
                result.throttled += 1
                throttled += 1
                now = asyncio.get_running_loop().time()
                give_up_at = give_up_at or now + MAX_THROTTLED_SECONDS
                if now < give_up_at:
                    continue
                break
            attempt += 1
            if status not in _RETRY_STATUSES:
                break
        if status not in (200, 410):
            logger.warning("post gave up", extra={"connection_id": connection_id, "status": status})
        return status

    async def _post(
        self, signer: RequestSigner, connection_id: str, payload: bytes, body_hash: str
    ) -> int:
        path = f"{self._path_prefix}/@connections/{quote(connection_id, safe='')}"
        headers = signer.sign("POST", self._host_header, path, body_hash)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host_header}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + "\r\n"
        )
        try:
            connection = await self._checkout()
        except ConnectionError as error:
            raise _NotSent() from error
        try:
            connection.writer.write(head.encode() + payload)
            status, keep_alive = await _read_answer(connection.reader)
        except asyncio.IncompleteReadError as error:
            connection.close()
            if error.partial:
                raise _BadAnswer("answer cut short") from error
            raise _NotSent() from error
        except ConnectionError as error:
            connection.close()
            raise _NotSent() from error
        except BaseException:
            connection.close()
            raise
        if keep_alive:
            self._idle.append(connection)
        else:
            connection.close()
        return status

    async def _checkout(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        reader, writer = await asyncio.open_connection(
            self._hostname,
            self._port,
            ssl=self._ssl,
            server_hostname=self._hostname if self._ssl else None,
            limit=_MAX_HEAD_BYTES,
        )
        return _Connection(reader, writer)


def retry_delay(tries: int, *, throttled: bool) -> float:
    """Seconds to wait before try ``tries + 1``: exponential, capped (lower after a 429),
    jittered (half to all of it, so throttled posts spread out instead of coming back
    together)."""
    cap = MAX_THROTTLED_BACKOFF_SECONDS if throttled else MAX_BACKOFF_SECONDS
    ceiling = min(cap, BACKOFF_SECONDS * 2.0 ** (tries - 1))
    return ceiling * (0.5 + random.random() / 2)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; return its status and whether the connection stays open."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        version, status_text = lines[0].split(b" ", 2)[:2]
        status = int(status_text)
    except (asyncio.LimitOverrunError, ValueError) as error:
        raise _BadAnswer("unreadable answer") from error
    keep_alive = version == b"HTTP/1.1"
    length: int | None = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError as error:
                raise _BadAnswer("bad content-length") from error
            if length < 0:
                raise _BadAnswer("negative content-length")
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            keep_alive = value == b"keep-alive" or (keep_alive and value != b"close")
    if chunked:
        await _skip_chunks(reader)
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()
        keep_alive = False
    return status, keep_alive


async def _skip_chunks(reader: asyncio.StreamReader) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as error:
            raise _BadAnswer("bad chunk size") from error
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return
        await reader.readexactly(size + 2)
