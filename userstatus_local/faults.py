"""Faults on purpose, for people testing their clients and handlers against what AWS does.

Each fault hits a share (0 to 1) of the events it names, at random:

* ``drop_disconnect``: a closing WebSocket's ``$disconnect`` is not run. API Gateway delivers
  ``$disconnect`` on a best-effort basis; the connection's row then stays until a broadcast
  gets 410 for it (once it is older than the broadcaster's 30 s grace) or its TTL expires.
* ``post_429``: a ``POST @connections/{id}`` answers 429 (``LimitExceededException``, "Rate
  exceeded"), as API Gateway answers when the account's request rate is passed; the broadcaster
  retries it with backoff, a bounded number of times.
* ``throttle_dynamodb``: a DynamoDB call of the functions fails with
  ``ProvisionedThroughputExceededException`` (400), as DynamoDB answers when a table or
  partition is over its throughput, after the SDK's own retries (the injected error stands
  for the last attempt): the HTTP and WebSocket functions answer 503 with Retry-After, the
  broadcaster reports the record for retry (and, once its retries are exhausted, the event
  source mapping sends it to the failure queue).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse

logger = logging.getLogger("userstatus_local.faults")

THROTTLED = "ProvisionedThroughputExceededException"


@dataclass(frozen=True)
class Faults:
    """The share of events each fault hits (0: never, 1: always)."""

    drop_disconnect: float = 0.0
    post_429: float = 0.0
    throttle_dynamodb: float = 0.0

    def __post_init__(self) -> None:
        for name in ("drop_disconnect", "post_429", "throttle_dynamodb"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"the share of {name} must be from 0 to 1, got {share}")

    def hits(self, name: str) -> bool:
        """Whether this event is one the fault ``name`` hits."""
        share: float = getattr(self, name)
        return share > 0 and random.random() < share

    def install_dynamodb_throttling(self, client: Any) -> None:
        """Make a share of ``client``'s calls fail as throttled (no-op for a share of 0)."""
        if self.throttle_dynamodb <= 0:
            return

        def throttle(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
            if not self.hits("throttle_dynamodb"):
                return None
            logger.info("fault: DynamoDB call throttled", extra={"operation": model.name})
            parsed = {
                "Error": {
                    "Code": THROTTLED,
                    "Message": "The level of configured provisioned throughput for the table "
                    "was exceeded. Consider increasing your provisioning level with the "
                    "UpdateTable API.",
                },
                "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {}},
            }
            return AWSResponse("https://dynamodb.invalid", 400, {}, None), parsed

        client.meta.events.register("before-call.dynamodb", throttle)
