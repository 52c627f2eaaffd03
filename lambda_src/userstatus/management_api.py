"""Posting to WebSocket connections through the API Gateway management API, concurrently.

One ``ConnectionPoster`` lives per container: a pool of worker threads, each keeping its own
HTTP/1.1 keep-alive connection to the endpoint, and requests signed with SigV4 (botocore's
signer, service ``execute-api``). Posting through a boto3 ``apigatewaymanagementapi`` client
costs several milliseconds of CPU per post; this path is the broadcaster's hot loop.
"""

from __future__ import annotations

import http.client
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

logger = logging.getLogger(__name__)

# 429 and 5xx are retried with jittered exponential backoff, at most this many attempts a post.
MAX_ATTEMPTS = 4
BACKOFF_SECONDS = 0.05
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

CredentialsProvider = Callable[[], Any]


@dataclass
class FanoutResult:
    """What became of one payload posted to many connections."""

    delivered: int = 0
    gone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


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
        self._scheme = parts.scheme
        self._host = parts.netloc
        self._base_url = endpoint.rstrip("/")
        self._path_prefix = parts.path.rstrip("/")
        self._region = region
        self._credentials = credentials
        self._concurrency = concurrency
        self._timeout = timeout
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="post")
        self._ssl = ssl.create_default_context() if self._scheme == "https" else None

    def post_to_all(self, connection_ids: Iterable[str], payload: bytes) -> FanoutResult:
        """Post ``payload`` to every connection; never raises for a single connection."""
        pending = deque(connection_ids)
        result = FanoutResult()
        if not pending:
            return result
        signer = SigV4Auth(self._credentials(), "execute-api", self._region)
        lock = threading.Lock()

        def drain() -> None:
            while True:
                try:
                    connection_id = pending.popleft()
                except IndexError:
                    return
                outcome = self._post_with_retries(signer, connection_id, payload)
                with lock:
                    if outcome == 200:
                        result.delivered += 1
                    elif outcome == 410:
                        result.gone.append(connection_id)
                    else:
                        result.failed.append(connection_id)

        workers = [self._pool.submit(drain) for _ in range(min(self._concurrency, len(pending)))]
        for worker in workers:
            worker.result()
        return result

    def _post_with_retries(self, signer: SigV4Auth, connection_id: str, payload: bytes) -> int:
        status = 0
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1) * (0.5 + random.random()))
            try:
                status = self._post(signer, connection_id, payload)
            except ConnectionError as error:
                # Refused, reset or closed before answering (a stale keep-alive connection):
                # the post was not taken, so it is safe to send again.
                logger.info(
                    "post retried", extra={"connection_id": connection_id, "error": repr(error)}
                )
                self._drop_connection()
                status = 0
                continue
            except (OSError, http.client.HTTPException) as error:
                # A timeout or garbled answer: the post may have been delivered; sending it again
                # could deliver it twice, so give up on this connection for this message.
                logger.warning(
                    "post failed", extra={"connection_id": connection_id, "error": repr(error)}
                )
                self._drop_connection()
                return 0
            if status not in _RETRY_STATUSES:
                break
        if status not in (200, 410):
            logger.warning("post gave up", extra={"connection_id": connection_id, "status": status})
        return status

    def _post(self, signer: SigV4Auth, connection_id: str, payload: bytes) -> int:
        path = f"{self._path_prefix}/@connections/{quote(connection_id, safe='')}"
        request = AWSRequest(
            method="POST",
            url=f"{self._scheme}://{self._host}{path}",
            data=payload,
            headers={"Content-Type": "application/json"},
        )
        signer.add_auth(request)
        connection = self._connection()
        connection.request("POST", path, body=payload, headers=dict(request.headers.items()))
        response = connection.getresponse()
        response.read()
        if response.will_close:
            self._drop_connection()
        return response.status

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            if self._ssl is not None:
                connection = http.client.HTTPSConnection(
                    self._host, timeout=self._timeout, context=self._ssl
                )
            else:
                connection = http.client.HTTPConnection(self._host, timeout=self._timeout)
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
