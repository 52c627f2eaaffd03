"""Client of the photonranch user status relay, for observatory software and operators.

- :func:`send` posts one status message and returns what the relay stored.
- :class:`UserStatusHandler` is a non-blocking :class:`logging.Handler` that streams an
  observatory's log records to the people watching.
- The ``userstatus`` command sends messages and follows a site (``tail``, needs the
  ``[follow]`` extra).

Only the standard library is needed, except ``websockets`` for following.
"""

from __future__ import annotations

__version__ = "0.1.0"

from userstatus_client.handler import HandlerStats, UserStatusHandler
from userstatus_client.http_api import (
    LogEntry,
    RelayClient,
    RelayRejectedError,
    RelayUnavailableError,
    RetryPolicy,
    StoredMessage,
    UserStatusError,
    send,
)
from userstatus_client.levels import RELAY_LEVELS, normalize_level, relay_level_for

__all__ = [
    "RELAY_LEVELS",
    "HandlerStats",
    "LogEntry",
    "RelayClient",
    "RelayRejectedError",
    "RelayUnavailableError",
    "RetryPolicy",
    "StoredMessage",
    "UserStatusError",
    "UserStatusHandler",
    "__version__",
    "normalize_level",
    "relay_level_for",
    "send",
]
