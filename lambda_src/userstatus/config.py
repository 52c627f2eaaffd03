"""Settings of the Lambda functions, read from environment variables once per container.

=================================  ==========================================================
``MESSAGES_TABLE``                 messages table name (required)
``CONNECTIONS_TABLE``              connections table name (required)
``WEBSOCKET_MANAGEMENT_ENDPOINT``  https://{api-id}.execute-api.{region}.amazonaws.com/{stage}
                                   in AWS, any http(s) URL locally (required by broadcast)
``MESSAGE_RETENTION_DAYS``         days a message is kept before DynamoDB TTL removes it (7)
``CORS_ALLOWED_ORIGINS``           comma-separated origins allowed to read responses, or ``*``
``BROADCAST_CONCURRENCY``          posts in flight at once during a broadcast (64)
``FANOUT_FUNCTION_NAME``           the fan-out function the broadcaster invokes for a big
                                   site's further chunks; unset: it posts to all itself
``FANOUT_CHUNK_CONNECTIONS``       connections one invocation posts to (1000); a site with
                                   more is split (see ``userstatus.fanout``)
``PUBLISH_AUTH``                   who may post: ``open`` (default), ``audit`` or ``keys``
                                   (see ``userstatus.publish_keys``)
``PUBLISH_KEYS_TABLE``             publish keys table name (required unless ``open``)
``STAGE``                          the stage's name, a dimension of metrics (``local``)
=================================  ==========================================================

DynamoDB is reached through boto3's own configuration: set ``AWS_ENDPOINT_URL_DYNAMODB`` to
use an embedded or local DynamoDB.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

# Who may post (userstatus.publish_keys).
PublishAuth = Literal["open", "audit", "keys"]
PUBLISH_AUTH_MODES: tuple[PublishAuth, ...] = ("open", "audit", "keys")
# API Gateway closes WebSocket connections after 2 hours; rows of connections whose $disconnect
# never ran expire a little later by themselves.
CONNECTION_TTL_SECONDS = 2 * 3600 + 10 * 60
# A chunk's connection ids travel in one synchronous invocation, whose payload Lambda caps at
# 6 MB (docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html); API Gateway's
# connection ids are 16 characters, so 50,000 of them are about 1 MB of JSON.
MAX_CHUNK_CONNECTIONS = 50_000


class ConfigError(RuntimeError):
    """An environment variable is missing or invalid."""


@dataclass(frozen=True)
class Settings:
    """Validated configuration of one Lambda container."""

    messages_table: str
    connections_table: str
    management_endpoint: str | None
    retention_days: int = 7
    allowed_origins: tuple[str, ...] = ("*",)
    broadcast_concurrency: int = 64
    fanout_function: str | None = None
    fanout_chunk_connections: int = 1000
    publish_auth: PublishAuth = "open"
    publish_keys_table: str | None = None
    stage: str = "local"

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * 86400

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the variables above; raise ConfigError naming a bad one."""
        env = os.environ if environ is None else environ
        endpoint = env.get("WEBSOCKET_MANAGEMENT_ENDPOINT", "").strip() or None
        if endpoint is not None:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    f"WEBSOCKET_MANAGEMENT_ENDPOINT must be an http(s) URL, got {endpoint!r}"
                )
            endpoint = endpoint.rstrip("/")
        publish_auth = _publish_auth(env.get("PUBLISH_AUTH", "").strip() or "open")
        keys_table = env.get("PUBLISH_KEYS_TABLE", "").strip() or None
        if publish_auth != "open" and keys_table is None:
            raise ConfigError(f"PUBLISH_KEYS_TABLE is required with PUBLISH_AUTH={publish_auth}")
        origins = tuple(
            o.strip() for o in env.get("CORS_ALLOWED_ORIGINS", "*").split(",") if o.strip()
        )
        return cls(
            messages_table=_required(env, "MESSAGES_TABLE"),
            connections_table=_required(env, "CONNECTIONS_TABLE"),
            management_endpoint=endpoint,
            retention_days=_positive_int(env, "MESSAGE_RETENTION_DAYS", 7, maximum=3650),
            allowed_origins=origins or ("*",),
            broadcast_concurrency=_positive_int(env, "BROADCAST_CONCURRENCY", 64, maximum=512),
            fanout_function=env.get("FANOUT_FUNCTION_NAME", "").strip() or None,
            fanout_chunk_connections=_positive_int(
                env, "FANOUT_CHUNK_CONNECTIONS", 1000, maximum=MAX_CHUNK_CONNECTIONS
            ),
            publish_auth=publish_auth,
            publish_keys_table=keys_table,
            stage=env.get("STAGE", "").strip() or "local",
        )


def _publish_auth(value: str) -> PublishAuth:
    for mode in PUBLISH_AUTH_MODES:
        if value == mode:
            return mode
    raise ConfigError(f"PUBLISH_AUTH must be one of {', '.join(PUBLISH_AUTH_MODES)}, got {value!r}")


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not 1 <= value <= maximum:
        raise ConfigError(f"{name} must be between 1 and {maximum}, got {value}")
    return value
