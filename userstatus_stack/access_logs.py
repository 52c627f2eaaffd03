"""JSON access logs for API Gateway v2 stages, written to a log group with the stage's retention."""

from __future__ import annotations

import json

import jsii
from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_logs as logs
from constructs import Construct

from userstatus_stack.nag import acknowledge

HTTP_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "integrationStatus": "$context.integrationStatus",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "sourceIp": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "caller": "$context.identity.caller",
}

WEBSOCKET_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "connectionId": "$context.connectionId",
    "status": "$context.status",
    "integrationStatus": "$context.integrationStatus",
    "integrationLatency": "$context.integrationLatency",
    "error": "$context.error.message",
    "sourceIp": "$context.identity.sourceIp",
}


@jsii.implements(apigw.IAccessLogSettings)
class AccessLogSettings:
    """Access log settings for ``HttpStage`` / ``WebSocketStage`` (Python has no concrete class)."""

    def __init__(self, log_group: logs.ILogGroup, fields: dict[str, str]) -> None:
        self._destination = apigw.LogGroupLogDestination(log_group)
        self._format = apigw_v1.AccessLogFormat.custom(json.dumps(fields, separators=(",", ":")))

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        return self._format


def access_log_group(
    scope: Construct,
    construct_id: str,
    *,
    retention: logs.RetentionDays,
    removal_policy: RemovalPolicy,
) -> logs.LogGroup:
    """A log group for one API stage's access logs."""
    group = logs.LogGroup(scope, construct_id, retention=retention, removal_policy=removal_policy)
    acknowledge_log_group(group)
    return group


def acknowledge_log_group(group: logs.LogGroup) -> None:
    """The gates' findings on every log group of the stack (functions' and access logs)."""
    acknowledge(
        group,
        ["CKV_AWS_158", "CT.CLOUDWATCH.PR.3"],
        "CloudWatch Logs encrypts log data at rest by default. The logs hold no secret "
        "(publish keys are never logged), and a customer key costs $1 a month per stage plus "
        "its requests.",
    )
    acknowledge(
        group,
        "CT.CLOUDWATCH.PR.2",
        "Logs are kept for the stage's log_retention_days (dev 7, prod 90), not a year: status "
        "messages themselves expire after days, and the logs are for debugging and hold "
        "callers' IP addresses, which need not be kept longer.",
    )
