"""Data access: the messages and connections tables behind two small classes.

Only this module speaks DynamoDB's attribute-value format. Throttling and service faults become
``StoreUnavailable`` (503 to callers); anything else propagates as an internal error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from userstatus import keys
from userstatus.config import CONNECTION_TTL_SECONDS
from userstatus.deadline import OutOfTime
from userstatus.errors import StoreUnavailable
from userstatus.model import Message, number_from_text, sort_key_after

_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "LimitExceededException",
    }
)


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Turn DynamoDB throttling, 5xx, connection failures and an attempt refused for lack of
    time (``userstatus.deadline``) into StoreUnavailable."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _UNAVAILABLE_CODES or status >= 500:
            raise StoreUnavailable() from error
        raise
    except (ConnectionError, HTTPClientError, OutOfTime) as error:
        raise StoreUnavailable() from error


class MessageStore:
    """The messages table: one partition per site, sort key ordered by time."""

    def __init__(self, client: Any, table_name: str, retention_seconds: int) -> None:
        self._client = client
        self._table = table_name
        self._retention = retention_seconds

    def put(self, message: Message, *, received_at: float) -> None:
        """Store one message; it expires ``retention`` after receipt.

        The sort key holds a random id, so an existing item with it can only be this message,
        written by an earlier attempt whose answer was lost (botocore retries): that is success.
        """
        try:
            with store_errors():
                self._client.put_item(
                    TableName=self._table,
                    Item=self.item_of(message, received_at=received_at),
                    ConditionExpression="attribute_not_exists(#sk)",
                    ExpressionAttributeNames={"#sk": keys.MESSAGES.sort_key.name},
                )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def item_of(self, message: Message, *, received_at: float) -> dict[str, Any]:
        """The stored item (DynamoDB attribute values) of a message."""
        return {
            keys.MESSAGES.partition_key.name: {"S": message.site},
            keys.MESSAGES.sort_key.name: {"S": message.sort_key},
            "message": {"S": message.message},
            "log_level": {"S": message.log_level},
            "timestamp": {"N": str(message.timestamp)},
            keys.EXPIRES_AT: {"N": str(int(received_at) + self._retention)},
        }

    def pages_newest_first(
        self, site: str, after_time: Decimal, limit: int | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Recent-logs entries of ``site`` stamped after ``after_time``, newest first, one
        query page (at most 1 MB read, DynamoDB's page size) at a time; with ``limit``, at most
        that many. Pages are read as they are asked for: stop iterating to stop reading.

        Entries are built straight from the items (this is the hot loop of recent-logs): the
        wire shape of ``Message.to_wire``.
        """
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#site = :site AND #sk > :after",
            "ExpressionAttributeNames": {
                "#site": keys.MESSAGES.partition_key.name,
                "#sk": keys.MESSAGES.sort_key.name,
            },
            "ExpressionAttributeValues": {
                ":site": {"S": site},
                ":after": {"S": sort_key_after(after_time)},
            },
            "ScanIndexForward": False,
        }
        if limit is not None:
            request["Limit"] = limit
        site_name = keys.MESSAGES.partition_key.name
        remaining = limit
        for page in query_pages(self._client, request):
            entries = [
                {
                    "site": item[site_name]["S"],
                    "message": item["message"]["S"],
                    "log_level": item["log_level"]["S"],
                    "timestamp": number_from_text(item["timestamp"]["N"]),
                }
                for item in page["Items"]
            ]
            if remaining is not None:
                del entries[remaining:]
                remaining -= len(entries)
            yield entries
            if remaining == 0:
                return


CONNECTED_AT = "connected_at"


@dataclass(frozen=True)
class Connection:
    """A live connection of a site as its row gives it."""

    connection_id: str
    connected_at: int


class ConnectionStore:
    """The connections table: one partition per site, an index on the connection id."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def add(self, site: str, connection_id: str, *, now: float) -> None:
        """Record a connection; the row expires a little after API Gateway's 2 h limit."""
        with store_errors():
            self._client.put_item(
                TableName=self._table,
                Item={
                    keys.CONNECTIONS.partition_key.name: {"S": site},
                    keys.CONNECTIONS.sort_key.name: {"S": connection_id},
                    CONNECTED_AT: {"N": str(int(now))},
                    keys.EXPIRES_AT: {"N": str(int(now) + CONNECTION_TTL_SECONDS)},
                },
            )

    def remove(self, site: str, connection_id: str) -> None:
        """Forget one connection of a site (410 Gone on a post)."""
        with store_errors():
            self._client.delete_item(
                TableName=self._table,
                Key={
                    keys.CONNECTIONS.partition_key.name: {"S": site},
                    keys.CONNECTIONS.sort_key.name: {"S": connection_id},
                },
            )

    def remove_everywhere(self, connection_id: str) -> int:
        """Forget a connection knowing only its id ($disconnect); return rows removed."""
        request = {
            "TableName": self._table,
            "IndexName": keys.CONNECTIONS_BY_ID_INDEX,
            "KeyConditionExpression": "#id = :id",
            "ExpressionAttributeNames": {"#id": keys.CONNECTIONS.sort_key.name},
            "ExpressionAttributeValues": {":id": {"S": connection_id}},
        }
        with store_errors():
            items = self._client.query(**request).get("Items", [])
        for item in items:
            self.remove(item[keys.CONNECTIONS.partition_key.name]["S"], connection_id)
        return len(items)

    def connections(self, site: str, *, now: float) -> list[Connection]:
        """Live connections of a site, every page read (expired rows left out)."""
        request = self._site_query(site, now)
        request["ProjectionExpression"] = "#id, #at"
        request["ExpressionAttributeNames"]["#id"] = keys.CONNECTIONS.sort_key.name
        request["ExpressionAttributeNames"]["#at"] = CONNECTED_AT
        id_name = keys.CONNECTIONS.sort_key.name
        return [
            Connection(item[id_name]["S"], int(item.get(CONNECTED_AT, {}).get("N", "0")))
            for page in query_pages(self._client, request)
            for item in page["Items"]
        ]

    def remove_if_connected_before(
        self, site: str, connection: Connection, *, cutoff: float
    ) -> bool:
        """Forget a connection answered 410, only if its row is still the one read, and older
        than ``cutoff``; whether it was removed. A row written since (a new ``$connect``) or a
        connection too young to be postable yet (its handshake may still be completing) stays.
        """
        try:
            with store_errors():
                self._client.delete_item(
                    TableName=self._table,
                    Key={
                        keys.CONNECTIONS.partition_key.name: {"S": site},
                        keys.CONNECTIONS.sort_key.name: {"S": connection.connection_id},
                    },
                    ConditionExpression="#at = :seen AND #at <= :cutoff",
                    ExpressionAttributeNames={"#at": CONNECTED_AT},
                    ExpressionAttributeValues={
                        ":seen": {"N": str(connection.connected_at)},
                        ":cutoff": {"N": str(int(cutoff))},
                    },
                )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def count(self, site: str, *, now: float) -> int:
        """Number of live connections of a site."""
        request = self._site_query(site, now)
        request["Select"] = "COUNT"
        return sum(page["Count"] for page in query_pages(self._client, request))

    def _site_query(self, site: str, now: float) -> dict[str, Any]:
        # TTL deletion lags by up to days: rows past their expiry are no longer connections.
        return {
            "TableName": self._table,
            "KeyConditionExpression": "#site = :site",
            "FilterExpression": "#ttl > :now",
            "ExpressionAttributeNames": {
                "#site": keys.CONNECTIONS.partition_key.name,
                "#ttl": keys.EXPIRES_AT,
            },
            "ExpressionAttributeValues": {":site": {"S": site}, ":now": {"N": str(int(now))}},
        }


def query_pages(client: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every page of a query, following LastEvaluatedKey."""
    request = dict(request)
    while True:
        with store_errors():
            page: dict[str, Any] = client.query(**request)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def message_from_item(item: dict[str, Any]) -> Message:
    """A stored item (DynamoDB attribute values, as in a query or a stream image)."""
    sort_key = item[keys.MESSAGES.sort_key.name]["S"]
    return Message(
        site=item[keys.MESSAGES.partition_key.name]["S"],
        message=item["message"]["S"],
        log_level=item["log_level"]["S"],
        timestamp=Decimal(item["timestamp"]["N"]),
        message_id=sort_key.partition("#")[2],
    )
