"""Key schemas and attribute names of the two DynamoDB tables.

The CDK stack, the local relay and the tests create tables from these definitions, so the key
schema lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

AttributeType = Literal["S", "N"]


@dataclass(frozen=True)
class KeyAttribute:
    """One key attribute of a table or index."""

    name: str
    type: AttributeType


@dataclass(frozen=True)
class IndexSchema:
    """A global secondary index (keys only projection)."""

    name: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None


@dataclass(frozen=True)
class TableSchema:
    """Key schema, indexes and TTL attribute of one table."""

    partition_key: KeyAttribute
    sort_key: KeyAttribute
    ttl_attribute: str | None = None
    indexes: tuple[IndexSchema, ...] = ()

    def create_table_kwargs(self, table_name: str) -> dict[str, Any]:
        """Arguments for boto3 ``create_table`` (on-demand billing), for tests and local runs."""
        attributes = {self.partition_key, self.sort_key}
        kwargs: dict[str, Any] = {
            "TableName": table_name,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": _key_schema(self.partition_key, self.sort_key),
        }
        if self.indexes:
            kwargs["GlobalSecondaryIndexes"] = []
            for index in self.indexes:
                attributes.add(index.partition_key)
                if index.sort_key is not None:
                    attributes.add(index.sort_key)
                kwargs["GlobalSecondaryIndexes"].append(
                    {
                        "IndexName": index.name,
                        "KeySchema": _key_schema(index.partition_key, index.sort_key),
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    }
                )
        kwargs["AttributeDefinitions"] = [
            {"AttributeName": a.name, "AttributeType": a.type}
            for a in sorted(attributes, key=lambda a: a.name)
        ]
        return kwargs


def _key_schema(partition: KeyAttribute, sort: KeyAttribute | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition.name, "KeyType": "HASH"}]
    if sort is not None:
        schema.append({"AttributeName": sort.name, "KeyType": "RANGE"})
    return schema


# The TTL attribute of the messages and connections tables: when DynamoDB may delete the row.
EXPIRES_AT = "expires_at"

# Messages: one partition per site; the sort key "<21-digit nanoseconds>#<32 hex id>" orders by
# time and is unique per message, so two messages of one site in the same second are both kept.
MESSAGES = TableSchema(
    partition_key=KeyAttribute("site", "S"),
    sort_key=KeyAttribute("sk", "S"),
    ttl_attribute=EXPIRES_AT,
)

# Connections: one partition per site (broadcast reads a site's connections); $disconnect only
# knows the connection id, hence the index on it.
CONNECTIONS_BY_ID_INDEX = "by_connection_id"
CONNECTIONS = TableSchema(
    partition_key=KeyAttribute("site", "S"),
    sort_key=KeyAttribute("connection_id", "S"),
    ttl_attribute=EXPIRES_AT,
    indexes=(IndexSchema(CONNECTIONS_BY_ID_INDEX, KeyAttribute("connection_id", "S")),),
)

# Publish keys (userstatus.publish_keys): one partition per site, a row per key under its id.
# A post names its site, so checking its key is one read of (site, key id); listing a site's
# keys is one query. No TTL: a revoked key's row stays, to say why it fails.
PUBLISH_KEYS = TableSchema(
    partition_key=KeyAttribute("site", "S"),
    sort_key=KeyAttribute("key_id", "S"),
)
