"""CORS: one definition for the HTTP API's answers and for API Gateway's CORS configuration.

In AWS, API Gateway answers preflight requests and sets the CORS headers of every answer from
the stack's configuration (built from these constants); the function's own headers serve the
local relay and any deployment without API Gateway CORS.
"""

from __future__ import annotations

ALLOWED_METHODS = ("GET", "POST", "OPTIONS")
ALLOWED_HEADERS = (
    "content-type",
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
)
# Set on a recent-logs answer that had to leave out its oldest entries.
TRUNCATED_HEADER = "X-Userstatus-Truncated"
EXPOSED_HEADERS = (TRUNCATED_HEADER,)


def cors_headers(origin: str | None, allowed_origins: tuple[str, ...]) -> dict[str, str]:
    """CORS headers for an answer to ``origin`` (every origin when ``*`` is allowed)."""
    headers = {
        "Access-Control-Allow-Methods": ",".join(ALLOWED_METHODS),
        "Access-Control-Allow-Headers": ",".join(ALLOWED_HEADERS),
        "Access-Control-Expose-Headers": ",".join(EXPOSED_HEADERS),
    }
    if "*" in allowed_origins:
        headers["Access-Control-Allow-Origin"] = "*"
    else:
        headers["Vary"] = "Origin"
        if origin in allowed_origins:
            headers["Access-Control-Allow-Origin"] = origin
    return headers
