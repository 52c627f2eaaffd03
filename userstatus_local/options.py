"""What the relay was asked for and where it is reached: plain values every module may import.

The orchestrator (``userstatus_local.startup``), the servers and the event builders all read
these; keeping them here, apart from the orchestrator, leaves no import circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from userstatus_local.faults import Faults
from userstatus_local.limits import IDLE_TIMEOUT_SECONDS, MAX_CONNECTION_SECONDS

LOCAL_STAGE = "local"


@dataclass(frozen=True)
class RelayOptions:
    """What the command line chose."""

    host: str = "127.0.0.1"
    http_port: int = 3000
    ws_port: int = 3001
    dynamodb_endpoint: str | None = None
    dynamodb_port: int = 0
    messages_table: str = "userstatus-local-messages"
    connections_table: str = "userstatus-local-connections"
    publish_keys_table: str = "userstatus-local-publish-keys"
    # Who may post (userstatus.publish_keys): open, audit or keys; None: the stage's own.
    publish_auth: str | None = None
    idle_timeout: float = IDLE_TIMEOUT_SECONDS
    max_connection_seconds: float = MAX_CONNECTION_SECONDS
    # The stage (userstatus_stack/stages.py) whose function and stream settings are imitated.
    stage: str = "dev"
    # Connections one broadcast invocation posts to before a site is split across the fan-out
    # function; None: the stage's own.
    fanout_chunk_connections: int | None = None
    # Where batches the stream poller gives up on go (JSON lines); None: a file of the run's own.
    failure_queue: Path | None = None
    faults: Faults = field(default_factory=Faults)


@dataclass(frozen=True)
class RelayAddresses:
    """Where the running relay is reached."""

    http_url: str
    ws_url: str
    dynamodb_url: str
    management_endpoint: str
    embedded_dynamodb: bool


def connect_host(host: str) -> str:
    """The address clients on this machine use for a listening address."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
    return wildcard.get(host, host)


def url_host(host: str) -> str:
    """A host as written in a URL (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host
