"""API Gateway's WebSocket numbers the relay reproduces, importable before anything else.

From API Gateway's quotas for WebSocket APIs ("Idle Connection Timeout: 10 minutes",
"Connection duration for WebSocket API: 2 hours", docs.aws.amazon.com/apigateway/latest/
developerguide/apigateway-execution-service-websocket-limits-table.html). API Gateway closes
such connections and runs ``$disconnect``; it does not document the close code: the relay uses
1001 (going away), as serverless-offline reproduces it.
"""

from __future__ import annotations

IDLE_TIMEOUT_SECONDS = 600.0
MAX_CONNECTION_SECONDS = 7200.0
