"""The stages: what ``cdk synth|deploy -c stage=...`` builds, and what the local relay imitates.

Plain settings (no aws_cdk import), so ``app.py`` and ``userstatus_local`` read the same ones.
"""

from __future__ import annotations

from userstatus_stack.config import StageConfig


def stack_name(stage: str) -> str:
    """The CloudFormation stack name of a stage."""
    return f"photonranch-userstatus-{stage}"


STAGES: dict[str, StageConfig] = {
    "dev": StageConfig(
        stage="dev",
        message_retention_days=7,
        throttle_rate_limit=20,
        throttle_burst_limit=40,
        cors_allowed_origins=("*",),
        log_retention_days=7,
        retain_data=False,
        broadcast_memory_mb=512,
    ),
    "prod": StageConfig(
        stage="prod",
        message_retention_days=7,
        throttle_rate_limit=100,
        throttle_burst_limit=200,
        cors_allowed_origins=("https://www.photonranch.org", "https://photonranch.org"),
        log_retention_days=90,
        retain_data=True,
        broadcast_memory_mb=1024,
        # Give the destination at deploy time: -c alarm_email=ADDRESS or -c alarm_topic_arn=ARN.
        alarm_destination_required=True,
    ),
}
