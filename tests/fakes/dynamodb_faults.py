"""Faults injected into a botocore DynamoDB client, call by call, leaving the others to moto.

``botocore.stub.Stubber`` answers every call of a client from its queue, so a test cannot let
the first page of a query reach moto and fail the second. ``DynamoDBFaults`` uses the same
hook as Stubber (the client's ``before-call`` event, after parameter validation and the SDK's
retry loop's reach), but only for the calls a test picks: by operation, table, index and
ordinal. Everything else goes to moto unchanged. A fault answers like DynamoDB: botocore raises
the same ``ClientError`` subclass with the same ``Error.Code`` and HTTP status.

Two faults act inside botocore's retry loop, so the SDK's own retries run:
``refuse_connections`` fails attempts before they are sent (``EndpointConnectionError``),
``lose_response`` lets an attempt reach moto (a write is applied) and loses its answer in
transit (``ReadTimeoutError``). ``page_size`` makes moto answer queries in small pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

# (error code, HTTP status) as DynamoDB answers them.
THROTTLING = (
    ("ProvisionedThroughputExceededException", 400),
    ("ThrottlingException", 400),
    ("RequestLimitExceeded", 400),
)
SERVER_ERRORS = (("InternalServerError", 500), ("ServiceUnavailable", 503))
UNAVAILABLE = THROTTLING + SERVER_ERRORS


@dataclass
class Fault:
    """Fail calls ``skip+1`` to ``skip+times`` of ``operation`` that match the filters."""

    operation: str
    code: str
    status: int
    table: str | None = None
    index: str | None = None
    skip: int = 0
    times: int = 1
    seen: int = 0
    injected: int = 0

    def matches(self, operation: str, params: dict[str, Any]) -> bool:
        return (
            operation == self.operation
            and (self.table is None or params.get("TableName") == self.table)
            and (self.index is None or params.get("IndexName") == self.index)
        )


@dataclass
class DynamoDBFaults:
    """Installed on one client; records every call (operation, params) that reached it."""

    client: Any
    faults: list[Fault] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lost: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    attempts: list[str] = field(default_factory=list)
    page_size: int | None = None

    def __enter__(self) -> DynamoDBFaults:
        events = self.client.meta.events
        events.register("before-parameter-build.dynamodb", self._decide)
        events.register("before-call.dynamodb", self._answer)
        # Last among the handlers of every request: after moto's, which has applied it.
        events.register_last("before-send", self._lose)
        # More specific than moto's "before-send": runs first, and raising stops moto's.
        events.register("before-send.dynamodb", self._refuse)
        return self

    def __exit__(self, *exc: object) -> None:
        events = self.client.meta.events
        events.unregister("before-parameter-build.dynamodb", self._decide)
        events.unregister("before-call.dynamodb", self._answer)
        events.unregister("before-send", self._lose)
        events.unregister("before-send.dynamodb", self._refuse)

    def fail(self, operation: str, code: str, status: int, **filters: Any) -> Fault:
        """Answer matching calls of ``operation`` (``PutItem``, ``Query``...) with an error."""
        fault = Fault(operation, code, status, **filters)
        self.faults.append(fault)
        return fault

    def lose_response(self, operation: str, times: int = 1) -> None:
        """Let the next ``times`` requests of ``operation`` reach moto, then lose the answers."""
        self.lost[operation] = times

    def refuse_connections(self, operation: str, times: int) -> None:
        """Fail the next ``times`` attempts of ``operation`` before they are sent."""
        self.refused[operation] = times

    def count(self, operation: str) -> int:
        """Calls of ``operation`` made by the code (each SDK retry is not a call)."""
        return sum(1 for name, _ in self.calls if name == operation)

    def _decide(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        self.calls.append((model.name, dict(params)))
        if self.page_size is not None and model.name == "Query" and "Limit" not in params:
            params["Limit"] = self.page_size
        for fault in self.faults:
            if not fault.matches(model.name, params):
                continue
            fault.seen += 1
            if fault.skip < fault.seen <= fault.skip + fault.times:
                fault.injected += 1
                context["injected_fault"] = fault
                return

    def _answer(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        fault = context.get("injected_fault")
        if fault is None:
            return None
        parsed = {
            "Error": {"Code": fault.code, "Message": f"injected {fault.code}"},
            "ResponseMetadata": {"HTTPStatusCode": fault.status, "HTTPHeaders": {}},
        }
        return AWSResponse("https://dynamodb.invalid", fault.status, {}, None), parsed

    def _lose(self, request: Any, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        if self.lost.get(operation, 0) > 0:
            self.lost[operation] -= 1
            raise ReadTimeoutError(endpoint_url=request.url)

    def _refuse(self, request: Any, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self.attempts.append(operation)
        if self.refused.get(operation, 0) > 0:
            self.refused[operation] -= 1
            raise EndpointConnectionError(endpoint_url=request.url)
