"""The three DynamoDB tables, built from the key schemas in ``userstatus.keys``."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from userstatus.keys import CONNECTIONS, MESSAGES, PUBLISH_KEYS, KeyAttribute, TableSchema
from userstatus_stack.nag import acknowledge

_ATTRIBUTE_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}


def _attribute(key: KeyAttribute) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTRIBUTE_TYPES[key.type])


def _table(
    scope: Construct,
    construct_id: str,
    schema: TableSchema,
    *,
    removal_policy: RemovalPolicy,
    stream: dynamodb.StreamViewType | None,
    point_in_time_recovery: bool,
) -> dynamodb.Table:
    table = dynamodb.Table(
        scope,
        construct_id,
        partition_key=_attribute(schema.partition_key),
        sort_key=_attribute(schema.sort_key),
        time_to_live_attribute=schema.ttl_attribute,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        stream=stream,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=point_in_time_recovery
        ),
        removal_policy=removal_policy,
    )
    for index in schema.indexes:
        table.add_global_secondary_index(
            index_name=index.name,
            partition_key=_attribute(index.partition_key),
            sort_key=_attribute(index.sort_key) if index.sort_key is not None else None,
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
    return table


class Storage(Construct):
    """Messages (streamed to the broadcaster) and WebSocket connections, both expiring by TTL,
    and the sites' publish keys (hashes only; kept, and restorable)."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy):
        super().__init__(scope, construct_id)
        self.messages_table = _table(
            self,
            "Messages",
            MESSAGES,
            removal_policy=removal_policy,
            stream=dynamodb.StreamViewType.NEW_IMAGE,
            point_in_time_recovery=True,
        )
        self.connections_table = _table(
            self,
            "Connections",
            CONNECTIONS,
            removal_policy=removal_policy,
            stream=None,
            point_in_time_recovery=False,
        )
        self.publish_keys_table = _table(
            self,
            "PublishKeys",
            PUBLISH_KEYS,
            removal_policy=removal_policy,
            stream=None,
            point_in_time_recovery=True,
        )
        for table in (self.messages_table, self.connections_table, self.publish_keys_table):
            acknowledge(
                table,
                "CKV_AWS_119",
                "Encrypted at rest with DynamoDB's AWS-owned key. Messages are public status "
                "texts, connections are ids, publish keys are stored only as SHA-256 hashes; a "
                "customer managed key would cost $1 a month per table plus KMS requests.",
            )
        acknowledge(
            self.connections_table,
            ["AwsSolutions-DDB3", "CKV_AWS_28", "CT.DYNAMODB.PR.1"],
            "Rows are live WebSocket connection ids that expire within hours (TTL) and die with "
            "their connections; a restored copy would only name closed connections.",
        )
