"""Typed, frozen settings of one deployment stage.

``app.py`` picks one ``StageConfig`` per stage (``userstatus_stack.stages``) and passes it to
the stack; the stack and its constructs never read CDK context or environment variables
themselves. Plain values only (aws_cdk is imported by the two properties that translate them),
so the local relay reads the same settings (function timeouts and memory, the event source
mapping's) without starting jsii.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from userstatus.config import MAX_CHUNK_CONNECTIONS, PUBLISH_AUTH_MODES, PublishAuth
from userstatus.deadline import ATTEMPT_NEEDS_SECONDS

if TYPE_CHECKING:
    from aws_cdk import RemovalPolicy
    from aws_cdk import aws_logs as logs

PostAuth = Literal["none", "iam"]
POST_AUTH_CHOICES: tuple[PostAuth, ...] = ("none", "iam")

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9]{1,15}$")
_SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_API_MAPPING_KEY = re.compile(r"^[A-Za-z0-9._-]+$")


# CloudWatch's retention periods this app uses, by days: the name of CDK's RetentionDays member.
LOG_RETENTION_NAMES = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
}


class StageConfigError(ValueError):
    """A stage setting is out of range or inconsistent."""


@dataclass(frozen=True)
class CustomDomain:
    """A custom domain for the HTTP API, such as ``logs.photonranch.org``.

    ``api_mapping_key`` is the first path segment (``logs`` in
    ``https://logs.photonranch.org/logs/newlog``). Several stages can share one domain name with
    different keys: exactly one of them sets ``owns_domain`` and creates the API Gateway domain
    name and its Route 53 alias record; the others only add their mapping to it.
    """

    domain_name: str
    certificate_arn: str
    hosted_zone_id: str
    hosted_zone_name: str
    api_mapping_key: str
    owns_domain: bool = True

    def __post_init__(self) -> None:
        if not _API_MAPPING_KEY.match(self.api_mapping_key):
            raise StageConfigError(f"invalid API mapping key {self.api_mapping_key!r}")
        if not self.certificate_arn.startswith("arn:"):
            raise StageConfigError("certificate_arn must be an ACM certificate ARN")
        if not self.domain_name.endswith(self.hosted_zone_name.rstrip(".")):
            raise StageConfigError(
                f"{self.domain_name!r} is not inside hosted zone {self.hosted_zone_name!r}"
            )


@dataclass(frozen=True)
class SharedDomain:
    """One custom domain name that several stages map their HTTP API under."""

    domain_name: str
    certificate_arn: str
    hosted_zone_id: str
    hosted_zone_name: str

    def for_stage(self, api_mapping_key: str, *, owns_domain: bool) -> CustomDomain:
        """This domain as one stage sees it."""
        return CustomDomain(
            domain_name=self.domain_name,
            certificate_arn=self.certificate_arn,
            hosted_zone_id=self.hosted_zone_id,
            hosted_zone_name=self.hosted_zone_name,
            api_mapping_key=api_mapping_key,
            owns_domain=owns_domain,
        )


@dataclass(frozen=True)
class StageConfig:
    """Everything that differs between stages; defaults are the dev values."""

    stage: str
    message_retention_days: int = 7
    throttle_rate_limit: int = 20
    throttle_burst_limit: int = 40
    cors_allowed_origins: tuple[str, ...] = ("*",)
    # Days CloudWatch keeps the functions' and APIs' logs (one of LOG_RETENTION_NAMES).
    log_retention_days: int = 7
    # Keep the tables, log groups and failure queue when the stack is deleted.
    retain_data: bool = False
    api_memory_mb: int = 256
    api_timeout_seconds: int = 10
    broadcast_memory_mb: int = 512
    broadcast_timeout_seconds: int = 60
    broadcast_concurrency: int = 64
    broadcast_batch_size: int = 100
    # Batches of one stream shard processed at once (ParallelizationFactor, 1-10). The messages
    # table's partition key is the site, and Lambda keeps records of one partition key in order
    # across the concurrent batches (docs.aws.amazon.com/lambda/latest/dg/with-ddb.html,
    # "Concurrent reads"), so each site's messages still arrive in order while up to this many
    # sites are broadcast to at once.
    broadcast_parallelization_factor: int = 10
    broadcast_batching_window_seconds: int = 0
    broadcast_retry_attempts: int = 3
    broadcast_bisect_on_error: bool = True
    broadcast_max_record_age_seconds: int = 3600
    # A site with more connections than this is split: the broadcaster posts to the first
    # chunk and invokes the fan-out function for each further one, all at once, and waits for
    # all before the site's next message (userstatus.fanout). Small sites cost no extra
    # invocation.
    fanout_chunk_connections: int = 1000
    fanout_memory_mb: int = 1024
    failure_queue_retention_days: int = 14
    post_auth: PostAuth = "none"
    # Who may post (userstatus.publish_keys): "open" (anyone, as before), "audit" (anyone, and
    # posts without a valid key are logged and counted), "keys" (a valid key of the site).
    publish_auth: PublishAuth = "open"
    custom_domain: CustomDomain | None = None
    # Where alarms go: an existing SNS topic, or a topic the stack creates with this address
    # subscribed. With neither, the stack creates a topic nobody is subscribed to, unless the
    # stage requires a destination (then its synth refuses; see ``check_alarm_destination``).
    alarm_topic_arn: str | None = None
    alarm_email: str | None = None
    alarm_destination_required: bool = False

    def __post_init__(self) -> None:
        if not _STAGE_NAME.match(self.stage):
            raise StageConfigError(f"stage name {self.stage!r} must match {_STAGE_NAME.pattern}")
        if self.post_auth not in POST_AUTH_CHOICES:
            raise StageConfigError(
                f"post_auth must be one of {', '.join(POST_AUTH_CHOICES)}, got {self.post_auth!r}"
            )
        if self.publish_auth not in PUBLISH_AUTH_MODES:
            raise StageConfigError(
                f"publish_auth must be one of {', '.join(PUBLISH_AUTH_MODES)}, "
                f"got {self.publish_auth!r}"
            )
        if not self.cors_allowed_origins:
            raise StageConfigError("cors_allowed_origins needs at least one origin (or '*')")
        _check_range("message_retention_days", self.message_retention_days, 1, 3650)
        if self.log_retention_days not in LOG_RETENTION_NAMES:
            raise StageConfigError(
                f"log_retention_days must be one of {sorted(LOG_RETENTION_NAMES)}, "
                f"got {self.log_retention_days}"
            )
        _check_range("throttle_rate_limit", self.throttle_rate_limit, 1, 10_000)
        _check_range("throttle_burst_limit", self.throttle_burst_limit, 1, 5_000)
        _check_range("api_memory_mb", self.api_memory_mb, 128, 10_240)
        _check_range("broadcast_memory_mb", self.broadcast_memory_mb, 128, 10_240)
        # Up to API Gateway's 29 s integration timeout; at least the time a DynamoDB attempt
        # needs to fail and still answer 503 (userstatus.deadline), or no call is ever made.
        _check_range(
            "api_timeout_seconds",
            self.api_timeout_seconds,
            math.ceil(ATTEMPT_NEEDS_SECONDS),
            29,
        )
        _check_range("broadcast_timeout_seconds", self.broadcast_timeout_seconds, 1, 900)
        _check_range("broadcast_concurrency", self.broadcast_concurrency, 1, 512)
        _check_range(
            "fanout_chunk_connections", self.fanout_chunk_connections, 1, MAX_CHUNK_CONNECTIONS
        )
        _check_range("fanout_memory_mb", self.fanout_memory_mb, 128, 10_240)
        _check_range("broadcast_batch_size", self.broadcast_batch_size, 1, 10_000)
        _check_range(
            "broadcast_parallelization_factor", self.broadcast_parallelization_factor, 1, 10
        )
        _check_range(
            "broadcast_batching_window_seconds", self.broadcast_batching_window_seconds, 0, 300
        )
        _check_range("broadcast_retry_attempts", self.broadcast_retry_attempts, 0, 10_000)
        _check_range(
            "broadcast_max_record_age_seconds", self.broadcast_max_record_age_seconds, 60, 604_800
        )
        _check_range("failure_queue_retention_days", self.failure_queue_retention_days, 1, 14)
        if self.alarm_topic_arn is not None and not _SNS_TOPIC_ARN.match(self.alarm_topic_arn):
            raise StageConfigError(
                f"alarm_topic_arn must be an SNS topic ARN, got {self.alarm_topic_arn!r}"
            )
        if self.alarm_email is not None and not _EMAIL.match(self.alarm_email):
            raise StageConfigError(
                f"alarm_email must be an email address, got {self.alarm_email!r}"
            )
        if self.alarm_topic_arn is not None and self.alarm_email is not None:
            raise StageConfigError("give alarm_topic_arn or alarm_email, not both")

    def check_alarm_destination(self) -> None:
        """Refuse a stage that must send its alarms somewhere and names nowhere."""
        if self.alarm_destination_required and not (self.alarm_topic_arn or self.alarm_email):
            raise StageConfigError(
                f"stage {self.stage} must say where its alarms go: "
                f"cdk synth|deploy -c stage={self.stage} -c alarm_email=ADDRESS "
                "(a topic is created with that address subscribed) or -c alarm_topic_arn=ARN "
                "(an existing SNS topic), or set one on the stage in STAGES "
                "(userstatus_stack/stages.py)"
            )

    @property
    def log_retention(self) -> logs.RetentionDays:
        """``log_retention_days`` as CDK's value."""
        from aws_cdk import aws_logs

        retention: logs.RetentionDays = getattr(
            aws_logs.RetentionDays, LOG_RETENTION_NAMES[self.log_retention_days]
        )
        return retention

    @property
    def removal_policy(self) -> RemovalPolicy:
        """``retain_data`` as CDK's removal policy."""
        from aws_cdk import RemovalPolicy

        return RemovalPolicy.RETAIN if self.retain_data else RemovalPolicy.DESTROY

    @property
    def cors_allowed_origins_env(self) -> str:
        """The origins as the functions' ``CORS_ALLOWED_ORIGINS`` value."""
        return ",".join(self.cors_allowed_origins)


def _check_range(name: str, value: int, minimum: int, maximum: int) -> None:
    if not minimum <= value <= maximum:
        raise StageConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
