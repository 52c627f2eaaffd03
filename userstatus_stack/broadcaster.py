"""The broadcaster: new messages from the messages table's stream, fanned out to WebSocket clients.

Only INSERT records reach the function (TTL deletions and updates are filtered out by the event
source mapping); failed records are retried in halves and, when retries or their age run out,
recorded in an encrypted SQS queue. A site with more connections than one invocation posts to
quickly is split into chunks: the fan-out function posts to each further chunk, invoked by the
broadcaster synchronously, all chunks at once (``userstatus.fanout``).
"""

from __future__ import annotations

from collections.abc import Mapping

import jsii
from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from userstatus.routes import BROADCAST_HANDLER, FANOUT_HANDLER
from userstatus_stack.config import StageConfig
from userstatus_stack.functions import HandlerFunction
from userstatus_stack.nag import acknowledge


@jsii.implements(lambda_.IEventSourceDlq)
class FailureQueueDestination:
    """The failure queue as the event source's on-failure destination.

    Like ``SqsDlq``, but the function's role is granted only ``sqs:SendMessage``, all that
    Lambda needs to send a failed batch's record to an SQS destination (``SqsDlq`` adds
    ``GetQueueAttributes`` and ``GetQueueUrl``, which nothing calls).
    """

    def __init__(self, queue: sqs.IQueue) -> None:
        self._queue = queue

    def bind(
        self, target: lambda_.IEventSourceMapping, target_handler: lambda_.IFunction
    ) -> lambda_.DlqDestinationConfig:
        """Grant the function's role ``sqs:SendMessage`` on the queue; the queue's ARN."""
        self._queue.grant(target_handler, "sqs:SendMessage")
        return lambda_.DlqDestinationConfig(destination=self._queue.queue_arn)


class Broadcaster(Construct):
    """The broadcast function, its stream event source, its failure queue and the fan-out
    function it invokes for big sites."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        code: lambda_.Code,
        environment: Mapping[str, str],
        messages_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.failure_queue = sqs.Queue(
            self,
            "FailureQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(config.failure_queue_retention_days),
            removal_policy=config.removal_policy,
        )
        acknowledge(
            self.failure_queue,
            "CKV_AWS_27",
            "Encrypted at rest with SQS-managed keys (SqsManagedSseEnabled), which checkov does "
            "not count, only a KMS key. The queue holds records' metadata (shard, sequence "
            "numbers), never message contents.",
        )
        acknowledge(
            self.failure_queue,
            ["AwsSolutions-SQS3", "CT.SQS.PR.1"],
            "This queue is the on-failure destination of the stream event source (it receives "
            "metadata of records that could not be broadcast); a queue behind it would only "
            "move the same records again. An alarm fires when it is not empty.",
        )
        # The broadcaster waits for its invocations, so the fan-out function gets its timeout.
        self.fanout_function = HandlerFunction(
            self,
            "FanoutHandler",
            code=code,
            handler=FANOUT_HANDLER,
            description=f"photonranch user status {config.stage}: post to a chunk of a big site",
            environment=environment,
            memory_mb=config.fanout_memory_mb,
            timeout=Duration.seconds(config.broadcast_timeout_seconds),
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
        ).function
        self.function = HandlerFunction(
            self,
            "BroadcastHandler",
            code=code,
            handler=BROADCAST_HANDLER,
            description=f"photonranch user status {config.stage}: broadcast new messages",
            environment={
                **environment,
                "FANOUT_FUNCTION_NAME": self.fanout_function.function_name,
                "FANOUT_CHUNK_CONNECTIONS": str(config.fanout_chunk_connections),
            },
            memory_mb=config.broadcast_memory_mb,
            timeout=Duration.seconds(config.broadcast_timeout_seconds),
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
        ).function
        self.function.add_event_source(
            event_sources.DynamoEventSource(
                messages_table,
                starting_position=lambda_.StartingPosition.LATEST,
                filters=[
                    lambda_.FilterCriteria.filter(
                        {"eventName": lambda_.FilterRule.is_equal("INSERT")}
                    )
                ],
                batch_size=config.broadcast_batch_size,
                parallelization_factor=config.broadcast_parallelization_factor,
                max_batching_window=Duration.seconds(config.broadcast_batching_window_seconds),
                report_batch_item_failures=True,
                bisect_batch_on_error=config.broadcast_bisect_on_error,
                retry_attempts=config.broadcast_retry_attempts,
                max_record_age=Duration.seconds(config.broadcast_max_record_age_seconds),
                on_failure=FailureQueueDestination(self.failure_queue),
            )
        )
