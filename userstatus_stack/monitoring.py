"""Alarms: failed broadcasts, function errors and throttles, API server errors, stream lag."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from userstatus_stack.nag import acknowledge

PERIOD = Duration.minutes(5)
BROADCAST_LAG_THRESHOLD = Duration.minutes(5)


class Monitoring(Construct):
    """CloudWatch alarms, every one sent to the stage's alarm topic: an existing SNS topic when
    the stage names one, else one created here (with the stage's email address subscribed)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        broadcast_function: lambda_.IFunction,
        failure_queue: sqs.IQueue,
        http_api: apigw.IHttpApi,
        websocket_api: apigw.IWebSocketApi,
        websocket_stage_name: str,
        alarm_topic_arn: str | None,
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cloudwatch.Alarm] = []
        self.topic = (
            sns.Topic.from_topic_arn(self, "AlarmTopic", alarm_topic_arn)
            if alarm_topic_arn
            else self._created_topic(alarm_email)
        )

        self._at_least_one(
            "FailedBroadcasts",
            failure_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
            ),
            "Stream records could not be broadcast and were sent to the failure queue.",
        )
        for name, function in functions.items():
            self._at_least_one(
                f"{name}Errors",
                function.metric_errors(period=PERIOD, statistic=cloudwatch.Stats.SUM),
                f"{name} raised errors.",
            )
            self._at_least_one(
                f"{name}Throttles",
                function.metric_throttles(period=PERIOD, statistic=cloudwatch.Stats.SUM),
                f"{name} was throttled.",
            )
        self._add(
            "BroadcastLag",
            broadcast_function.metric(
                "IteratorAge", period=PERIOD, statistic=cloudwatch.Stats.MAXIMUM
            ),
            threshold=BROADCAST_LAG_THRESHOLD.to_milliseconds(),
            description="The broadcaster is more than five minutes behind the messages stream.",
        )
        self._at_least_one(
            "HttpApi5xx",
            http_api.metric_server_error(period=PERIOD, statistic=cloudwatch.Stats.SUM),
            "The HTTP API answered with 5xx.",
        )
        for metric_name in ("IntegrationError", "ExecutionError"):
            self._at_least_one(
                f"WebSocket{metric_name}",
                cloudwatch.Metric(
                    namespace="AWS/ApiGateway",
                    metric_name=metric_name,
                    dimensions_map={
                        "ApiId": websocket_api.api_id,
                        "Stage": websocket_stage_name,
                    },
                    period=PERIOD,
                    statistic=cloudwatch.Stats.SUM,
                ),
                f"The WebSocket API reported {metric_name} (its equivalent of 5xx).",
            )

    def _at_least_one(
        self, construct_id: str, metric: cloudwatch.IMetric, description: str
    ) -> None:
        self._add(construct_id, metric, threshold=1, description=description)

    def _add(
        self, construct_id: str, metric: cloudwatch.IMetric, *, threshold: float, description: str
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
        self.alarms.append(alarm)

    def _created_topic(self, email: str | None) -> sns.ITopic:
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name="photonranch user status alarms",
            enforce_ssl=True,
        )
        acknowledge(
            topic,
            ["AwsSolutions-SNS2", "CKV_AWS_26"],
            "CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS key "
            "(it grants nothing to cloudwatch.amazonaws.com), and a customer key costs $1 a month "
            "per stage for alarm texts that hold no secrets.",
        )
        if email is not None:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        return topic
