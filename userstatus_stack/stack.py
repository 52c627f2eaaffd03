"""The whole relay for one stage: tables, HTTP and WebSocket APIs, broadcaster, alarms."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnElement, CfnOutput, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from userstatus.keys import CONNECTIONS_BY_ID_INDEX
from userstatus.routes import BROADCAST_HANDLER, FANOUT_HANDLER, HTTP_HANDLER, WEBSOCKET_HANDLER
from userstatus_stack.broadcaster import Broadcaster
from userstatus_stack.config import StageConfig
from userstatus_stack.custom_domain import CustomDomainMapping
from userstatus_stack.functions import function_id, lambda_code
from userstatus_stack.http_api import StatusHttpApi
from userstatus_stack.monitoring import Monitoring
from userstatus_stack.nag import acknowledge
from userstatus_stack.storage import Storage
from userstatus_stack.websocket_api import StatusWebSocketApi


class UserStatusStack(Stack):
    """Composes the constructs and wires the least-privilege grants between them."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        config.check_alarm_destination()
        self.config = config
        Tags.of(self).add("project", "photonranch-userstatus")
        Tags.of(self).add("stage", config.stage)

        self.storage = Storage(self, "Storage", removal_policy=config.removal_policy)
        messages = self.storage.messages_table
        connections = self.storage.connections_table
        publish_keys = self.storage.publish_keys_table
        code = lambda_code()
        environment = {
            "STAGE": config.stage,
            "MESSAGES_TABLE": messages.table_name,
            "CONNECTIONS_TABLE": connections.table_name,
            "PUBLISH_AUTH": config.publish_auth,
            "PUBLISH_KEYS_TABLE": publish_keys.table_name,
            "MESSAGE_RETENTION_DAYS": str(config.message_retention_days),
            "CORS_ALLOWED_ORIGINS": config.cors_allowed_origins_env,
        }

        self.http_api = StatusHttpApi(
            self, "HttpApi", config=config, code=code, environment=environment
        )
        self.websocket_api = StatusWebSocketApi(
            self, "WebSocketApi", config=config, code=code, environment=environment
        )
        self.broadcaster = Broadcaster(
            self,
            "Broadcaster",
            config=config,
            code=code,
            environment={
                **environment,
                "WEBSOCKET_MANAGEMENT_ENDPOINT": self.websocket_api.management_endpoint,
                "BROADCAST_CONCURRENCY": str(config.broadcast_concurrency),
            },
            messages_table=messages,
        )

        # Each grant is what the function's calls need, checked against the calls it makes on
        # the stack deployed into ministack (tests/e2e/test_deployed_least_privilege.py).
        http_fn = self.http_api.functions[HTTP_HANDLER]
        messages.grant(http_fn, "dynamodb:PutItem", "dynamodb:Query")
        _grant(http_fn, [connections.table_arn], "dynamodb:Query")

        websocket_fn = self.websocket_api.functions[WEBSOCKET_HANDLER]
        _grant(websocket_fn, [connections.table_arn], "dynamodb:PutItem", "dynamodb:DeleteItem")
        # $disconnect finds a connection's row through the index by connection id.
        _grant(
            websocket_fn,
            [f"{connections.table_arn}/index/{CONNECTIONS_BY_ID_INDEX}"],
            "dynamodb:Query",
        )
        if any(route.posts_messages for route in self.websocket_api.routes):
            messages.grant(websocket_fn, "dynamodb:PutItem")
        if config.publish_auth != "open":
            # Each post's key is one read of (site, key id); keys are written by operators.
            _grant(http_fn, [publish_keys.table_arn], "dynamodb:GetItem")
            if any(route.posts_messages for route in self.websocket_api.routes):
                _grant(websocket_fn, [publish_keys.table_arn], "dynamodb:GetItem")

        broadcast_fn = self.broadcaster.function
        _grant(broadcast_fn, [connections.table_arn], "dynamodb:Query", "dynamodb:DeleteItem")
        self.websocket_api.stage.grant_management_api_access(broadcast_fn)
        # The fan-out function only posts; the broadcaster invokes exactly that function (not
        # its versions: ``grant_invoke`` would add ``<arn>:*``).
        fanout_fn = self.broadcaster.fanout_function
        self.websocket_api.stage.grant_management_api_access(fanout_fn)
        _grant(broadcast_fn, [fanout_fn.function_arn], "lambda:InvokeFunction")
        for poster in (broadcast_fn, fanout_fn):
            _acknowledge_policy(
                poster,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:"
                f"<AWS::AccountId>:<{_logical_id(self.websocket_api.api)}>/{config.stage}/*/"
                "@connections/*]",
                "execute-api:ManageConnections is scoped to this stage's @connections API; the "
                "wildcards are the HTTP method (POST/GET/DELETE) and the connection id, which "
                "is only known at run time.",
            )
        _acknowledge_policy(
            broadcast_fn,
            "AwsSolutions-IAM5[Resource::*]",
            "dynamodb:ListStreams (added by DynamoEventSource for the stream poller) has no "
            "resource-level permissions; the stream reads themselves are scoped to the messages "
            "table's stream ARN.",
        )

        self.custom_domain = (
            CustomDomainMapping(
                self,
                "CustomDomain",
                domain=config.custom_domain,
                http_api=self.http_api.api,
                http_stage=self.http_api.stage,
            )
            if config.custom_domain is not None
            else None
        )

        functions = {
            function_id(HTTP_HANDLER): http_fn,
            function_id(WEBSOCKET_HANDLER): websocket_fn,
            function_id(BROADCAST_HANDLER): broadcast_fn,
            function_id(FANOUT_HANDLER): fanout_fn,
        }
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            functions=functions,
            broadcast_function=broadcast_fn,
            failure_queue=self.broadcaster.failure_queue,
            http_api=self.http_api.api,
            websocket_api=self.websocket_api.api,
            websocket_stage_name=self.websocket_api.stage.stage_name,
            alarm_topic_arn=config.alarm_topic_arn,
            alarm_email=config.alarm_email,
        )

        CfnOutput(self, "HttpApiUrl", value=self.http_api.url, description="HTTP API base URL")
        CfnOutput(
            self, "WebSocketUrl", value=self.websocket_api.url, description="WebSocket URL (wss://)"
        )
        CfnOutput(self, "MessagesTableName", value=messages.table_name)
        CfnOutput(self, "ConnectionsTableName", value=connections.table_name)
        CfnOutput(
            self,
            "PublishKeysTableName",
            value=publish_keys.table_name,
            description="Publish keys of the sites (userstatus-keys --stage)",
        )
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=self.monitoring.topic.topic_arn,
            description="SNS topic every alarm notifies (subscribe to it to be told)",
        )
        if self.custom_domain is not None:
            CfnOutput(
                self,
                "CustomDomainUrl",
                value=self.custom_domain.url,
                description="HTTP API base URL on the custom domain",
            )


def _grant(function: lambda_.IFunction, resource_arns: list[str], *actions: str) -> None:
    """Allow ``actions`` on exactly ``resource_arns`` (``Table.grant`` adds every index too)."""
    iam.Grant.add_to_principal(grantee=function, actions=list(actions), resource_arns=resource_arns)


def _logical_id(construct: Construct) -> str:
    """The CloudFormation logical id of ``construct``'s resource, as cdk-nag spells it."""
    resource = construct.node.default_child
    assert isinstance(resource, CfnElement)
    return Stack.of(construct).get_logical_id(resource)


def _acknowledge_policy(function: lambda_.IFunction, rule_id: str, reason: str) -> None:
    role = function.role
    assert role is not None
    acknowledge(role.node.find_child("DefaultPolicy"), rule_id, reason)
