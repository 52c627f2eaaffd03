"""HTTP client of the relay's API: ``send()`` and a small keep-alive client for its three routes.

Wire format (the contract with the server):

- ``POST {base}/newlog`` with a JSON object ``{"site", "log_message", "log_level"?,
  "timestamp"?}`` answers 200 with ``{"site", "message", "log_level", "timestamp", "id"}``.
  Errors are ``{"error": "..."}``: 400/413 for bad input (never retried), 503 with
  ``Retry-After`` when the store is throttled, 500 with a ``request_id``.
- ``GET {base}/recent-logs?site=S&after_time=T[&limit=N]`` answers a JSON array, oldest first,
  of ``{"site", "message", "log_level", "timestamp"}``.
- ``GET {base}/onlineusers?site=S`` answers ``{"site": S, "connections": N}``.
- On a stage that checks publish keys, ``POST /newlog`` carries ``Authorization: Bearer <key>``
  (the ``key`` argument, else ``$USERSTATUS_KEY``): 401 without one, 403 for a key of another
  site or a revoked one. Reads need no key, and none is sent with them. The key is never
  logged, printed or put in an exception.

5xx answers, 429 (API Gateway throttling) and connection errors are retried with bounded,
jittered exponential backoff; any other 4xx raises :class:`RelayRejectedError` at once, carrying
the server's message. Only the standard library is used.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from userstatus_client.levels import normalize_level

__all__ = [
    "DEFAULT_URL",
    "KEY_ENV",
    "URL_ENV",
    "LogEntry",
    "RelayClient",
    "RelayRejectedError",
    "RelayUnavailableError",
    "RetryPolicy",
    "StoredMessage",
    "UserStatusError",
    "check_base_url",
    "resolve_key",
    "resolve_url",
    "send",
]

URL_ENV = "USERSTATUS_URL"
KEY_ENV = "USERSTATUS_KEY"
DEFAULT_URL = "http://127.0.0.1:3000"
"""The local relay started by ``make dev``."""

USER_AGENT = "userstatus-client/0.1"
_STALE_CONNECTION_ERRORS = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
)


class UserStatusError(Exception):
    """Base class of every error this package raises."""


class RelayRejectedError(UserStatusError):
    """The relay refused the request (4xx): retrying the same request cannot succeed."""

    def __init__(self, status: int, server_message: str) -> None:
        super().__init__(f"relay rejected the request (HTTP {status}): {server_message}")
        self.status = status
        self.server_message = server_message


class RelayUnavailableError(UserStatusError):
    """The relay could not be reached or kept failing (5xx) after every retry."""

    def __init__(self, attempts: int, reason: str, status: int | None = None) -> None:
        super().__init__(f"relay unavailable after {attempts} attempt(s): {reason}")
        self.attempts = attempts
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class LogEntry:
    """One message as the relay serves it: from ``/recent-logs`` or a WebSocket frame."""

    site: str
    message: str
    log_level: str
    timestamp: float

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LogEntry:
        """Build from a decoded JSON object; ``timestamp`` may be a number or numeric string."""
        try:
            return cls(
                site=str(obj["site"]),
                message=str(obj["message"]),
                log_level=str(obj.get("log_level", "info")),
                timestamp=float(obj["timestamp"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserStatusError(f"malformed message from the relay: {exc!r}") from exc


@dataclass(frozen=True)
class StoredMessage(LogEntry):
    """What ``POST /newlog`` stored; ``extra`` keeps any keys this client does not know."""

    id: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> StoredMessage:
        """Build from the decoded ``/newlog`` answer."""
        entry = LogEntry.from_json(obj)
        known = {"site", "message", "log_level", "timestamp", "id"}
        return cls(
            site=entry.site,
            message=entry.message,
            log_level=entry.log_level,
            timestamp=entry.timestamp,
            id=str(obj.get("id", "")),
            extra={k: v for k, v in obj.items() if k not in known},
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: ``retries`` retries after the first attempt.

    The n-th retry waits a random time between half and all of ``backoff * 2**n`` seconds,
    at least the server's ``Retry-After``, and never more than ``max_backoff`` seconds.
    """

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0

    def delay(self, retry_index: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry_index`` (0-based)."""
        ceiling = self.backoff * (2**retry_index)
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return max(0.0, min(wait, self.max_backoff))


def resolve_url(url: str | None = None) -> str:
    """The HTTP base URL: the argument, else ``$USERSTATUS_URL``, else the local relay."""
    return (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")


def check_base_url(url: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """``url`` without its trailing ``/`` if it is a base URL of one of ``schemes``.

    A base URL has a host, an optional port and path, no query or fragment, no whitespace.
    Raises ValueError saying what is wrong otherwise.
    """
    expected = " or ".join(f"{scheme}://" for scheme in schemes)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in schemes:
        raise ValueError(f"must start with {expected}, got {url!r}")
    if any(character.isspace() for character in url):
        raise ValueError(f"must not contain whitespace, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"has no host: {url!r}")
    try:
        parts.port  # noqa: B018 - urllib checks the port only when it is read
    except ValueError:
        raise ValueError(f"has an invalid port: {url!r}") from None
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"must not have a query or fragment: {url!r}")
    return url.rstrip("/")


class _Transient(Exception):
    """A failure worth retrying: connection error, 5xx or 429."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class RelayClient:
    """A client for one relay, keeping its HTTP connection alive between requests.

    Not thread-safe: use one client per thread. ``send()`` below makes a throwaway one.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        key: str | None = None,
    ) -> None:
        try:
            self.url = check_base_url(resolve_url(url))
        except ValueError as exc:
            raise ValueError(f"relay URL {exc}") from None
        self._key = resolve_key(key)
        parts = urllib.parse.urlsplit(self.url)
        self._scheme = parts.scheme.lower()
        self._host = parts.hostname or ""  # never empty: check_base_url wants a host
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self._sleep = sleep
        self._conn: http.client.HTTPConnection | None = None
        self._conn_used = False

    def __enter__(self) -> RelayClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept-alive connection, if any."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def send(
        self,
        site: str,
        message: str,
        level: str | int = "info",
        timestamp: float | None = None,
    ) -> StoredMessage:
        """Post one message to ``/newlog`` and return what the relay stored."""
        body: dict[str, Any] = {
            "site": site,
            "log_message": message,
            "log_level": normalize_level(level),
        }
        if timestamp is not None:
            body["timestamp"] = timestamp
        answer = self._request_with_retries("POST", "/newlog", body=body, authorized=True)
        if not isinstance(answer, dict):
            raise UserStatusError(f"unexpected answer from /newlog: {answer!r}")
        return StoredMessage.from_json(answer)

    def recent_logs(
        self, site: str, after_time: float | None = None, limit: int | None = None
    ) -> list[LogEntry]:
        """Messages of ``site`` after ``after_time`` (relay default: 24 h ago), oldest first."""
        query: dict[str, str] = {"site": site}
        if after_time is not None:
            query["after_time"] = repr(float(after_time))
        if limit is not None:
            query["limit"] = str(limit)
        answer = self._request_with_retries("GET", "/recent-logs", query=query)
        if not isinstance(answer, list):
            raise UserStatusError(f"unexpected answer from /recent-logs: {answer!r}")
        return [LogEntry.from_json(item) for item in answer]

    def online_users(self, site: str) -> int:
        """How many WebSocket viewers are following ``site`` right now."""
        answer = self._request_with_retries("GET", "/onlineusers", query={"site": site})
        if not isinstance(answer, dict) or not isinstance(answer.get("connections"), int):
            raise UserStatusError(f"unexpected answer from /onlineusers: {answer!r}")
        return int(answer["connections"])

    def _request_with_retries(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        authorized: bool = False,
    ) -> Any:
        attempts = self.retry.retries + 1
        for attempt in range(attempts):
            try:
                return self._request_once(
                    method, path, query=query, body=body, authorized=authorized
                )
            except _Transient as failure:
                if attempt + 1 >= attempts:
                    raise RelayUnavailableError(attempts, failure.reason, failure.status) from None
                self._sleep(self.retry.delay(attempt, failure.retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    def _request_once(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
        authorized: bool = False,
    ) -> Any:
        target = self._prefix + path
        if query:
            target += "?" + urllib.parse.urlencode(query)
        payload = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if authorized and self._key is not None:
            headers["Authorization"] = f"Bearer {self._key}"
        try:
            status, retry_after_header, raw = self._exchange(method, target, payload, headers)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise _Transient(f"{self.url}: {_describe(exc)}") from exc
        decoded = _decode_json(raw)
        if 200 <= status < 300:
            if decoded is _UNDECODABLE:
                raise UserStatusError(f"relay answered HTTP {status} with a non-JSON body")
            return decoded
        server_message = _server_message(decoded, raw)
        if status >= 500 or status == 429:
            raise _Transient(
                f"HTTP {status}: {server_message}", status, _parse_retry_after(retry_after_header)
            )
        raise RelayRejectedError(status, server_message)

    def _exchange(
        self, method: str, target: str, payload: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str | None, bytes]:
        """One request/response, reopening once if a kept-alive connection went stale."""
        while True:
            reused = self._conn is not None and self._conn_used
            conn = self._connection()
            try:
                conn.request(method, target, body=payload, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except _STALE_CONNECTION_ERRORS:
                self.close()
                if reused:
                    continue
                raise
            self._conn_used = True
            if response.will_close:
                self.close()
            return response.status, response.getheader("Retry-After"), raw

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout
                )
            self._conn_used = False
        return self._conn


_UNDECODABLE = object()


def _decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _UNDECODABLE


def _server_message(decoded: Any, raw: bytes) -> str:
    if isinstance(decoded, dict):
        for key in ("error", "message"):
            if isinstance(decoded.get(key), str):
                text: str = decoded[key]
                if decoded.get("request_id"):
                    text += f" (request_id {decoded['request_id']})"
                return text
    snippet = raw[:200].decode("utf-8", "replace").strip()
    return snippet or "(no message)"


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def resolve_key(key: str | None) -> str | None:
    """The publish key: the argument, else ``$USERSTATUS_KEY``, else none; ValueError (which
    never quotes the key) if it could not be sent as a header."""
    chosen = key if key is not None else os.environ.get(KEY_ENV)
    if chosen is None or chosen == "":
        return None
    if not isinstance(chosen, str) or not chosen.isprintable() or chosen != chosen.strip():
        raise ValueError("the publish key must be printable text without spaces around it")
    if any(c.isspace() for c in chosen) or len(chosen) > 256:
        raise ValueError("the publish key must be one word of at most 256 characters")
    return chosen


def send(
    site: str,
    message: str,
    level: str | int = "info",
    timestamp: float | None = None,
    url: str | None = None,
    *,
    timeout: float = 5.0,
    retry: RetryPolicy | None = None,
    key: str | None = None,
) -> StoredMessage:
    """Post one status message and return what the relay stored.

    ``level`` is a relay level name (any case; ``warn``/``fatal`` accepted) or a Python logging
    level number. ``url`` defaults to ``$USERSTATUS_URL``, else the local relay; ``key``, the
    site's publish key, to ``$USERSTATUS_KEY``, else none (enough on an open stage). Raises
    :class:`RelayRejectedError` on 4xx and :class:`RelayUnavailableError` once retries are spent.
    """
    with RelayClient(url, timeout=timeout, retry=retry, key=key) as client:
        return client.send(site, message, level, timestamp)
