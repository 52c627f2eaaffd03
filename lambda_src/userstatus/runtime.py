"""What a Lambda container builds once and reuses: settings, boto3 clients, the stores.

Built on first use (the first invocation of a container), not at import, so importing an entry
module costs little more than importing boto3. Tests reset it with ``runtime.cache_clear()``.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from userstatus import deadline
from userstatus.config import ConfigError, Settings
from userstatus.logs import configure_logging
from userstatus.publish_keys import KeyStore, PublishCheck
from userstatus.store import ConnectionStore, MessageStore

if TYPE_CHECKING:
    from userstatus.chunk_invoker import ChunkInvoker
    from userstatus.management_api import ConnectionPoster

_DYNAMODB_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": deadline.TOTAL_MAX_ATTEMPTS},
    connect_timeout=deadline.CONNECT_TIMEOUT_SECONDS,
    read_timeout=deadline.READ_TIMEOUT_SECONDS,
)
# Lambda answers a synchronous invocation when the function returns, at most its timeout (the
# stack gives the fan-out function the broadcaster's, at most 900 s) later: the read timeout
# is longer, so a running invocation is never cut off and sent again. Invocations Lambda did
# not run (TooManyRequestsException, a connection refused) are retried by the standard mode.
_LAMBDA_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=deadline.CONNECT_TIMEOUT_SECONDS,
    read_timeout=905,
    max_pool_connections=50,
)
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com", re.I)


@dataclass
class Runtime:
    """Per-container state shared by every invocation."""

    settings: Settings
    session: Any
    messages: MessageStore
    connections: ConnectionStore
    publish: PublishCheck

    @functools.cached_property
    def poster(self) -> ConnectionPoster:
        """The management API client; only the broadcaster needs it (so only it imports it)."""
        from userstatus.management_api import ConnectionPoster

        endpoint = self.settings.management_endpoint
        if endpoint is None:
            raise ConfigError("WEBSOCKET_MANAGEMENT_ENDPOINT is required to broadcast")
        session = self.session

        def credentials() -> Any:
            found = session.get_credentials()
            if found is None:
                raise ConfigError("no AWS credentials to sign management API requests")
            return found.get_frozen_credentials()

        return ConnectionPoster(
            endpoint,
            region=signing_region(endpoint, session.region_name),
            credentials=credentials,
            concurrency=self.settings.broadcast_concurrency,
        )

    @functools.cached_property
    def fanout(self) -> ChunkInvoker | None:
        """Invokes the fan-out function for a big site's further chunks; None without one
        (``FANOUT_FUNCTION_NAME`` unset: the broadcaster posts to every connection itself)."""
        from userstatus.chunk_invoker import ChunkInvoker, lambda_invoke

        name = self.settings.fanout_function
        if name is None:
            return None
        return ChunkInvoker(
            lambda_invoke(self.session.client("lambda", config=_LAMBDA_CONFIG), name)
        )


@functools.cache
def runtime() -> Runtime:
    """The container's runtime, built once from the environment."""
    configure_logging()
    settings = Settings.from_environ()
    session = boto3.session.Session()
    dynamodb = session.client("dynamodb", config=_DYNAMODB_CONFIG)
    # Before each attempt (retries too): refuse one the invocation has no time to see fail.
    dynamodb.meta.events.register("before-send.dynamodb", deadline.check_attempt)
    keys_table = settings.publish_keys_table
    return Runtime(
        settings=settings,
        session=session,
        messages=MessageStore(dynamodb, settings.messages_table, settings.retention_seconds),
        connections=ConnectionStore(dynamodb, settings.connections_table),
        publish=PublishCheck(
            settings.publish_auth,
            KeyStore(dynamodb, keys_table) if keys_table is not None else None,
            stage=settings.stage,
        ),
    )


def signing_region(endpoint: str, default: str | None) -> str:
    """The region in an execute-api host name, else the session's (locally any region)."""
    host = endpoint.split("://", 1)[-1]
    match = _EXECUTE_API_HOST.match(host)
    if match:
        return match.group(1)
    return default or os.environ.get("AWS_REGION") or "us-east-1"
