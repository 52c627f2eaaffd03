"""Domain errors. Entry modules map them to HTTP responses or WebSocket frames in one place."""

from __future__ import annotations


class RelayError(Exception):
    """Base of the errors a caller is told about (never an internal error)."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(RelayError):
    """The request is malformed; ``field`` names what is wrong (``body`` for the body itself)."""

    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Unauthorized(InvalidInput):
    """No credential where one is needed (a publish key: ``userstatus.publish_keys``)."""

    status = 401


class Forbidden(InvalidInput):
    """The credential given does not allow this request."""

    status = 403


class PayloadTooLarge(InvalidInput):
    """The request body is larger than any valid message needs."""

    status = 413


class RouteNotFound(RelayError):
    """No such route."""

    status = 404


class StoreUnavailable(RelayError):
    """DynamoDB throttled or failed; the caller may retry after ``retry_after`` seconds."""

    status = 503

    def __init__(
        self, message: str = "message store unavailable, retry later", *, retry_after: int = 1
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
