#!/usr/bin/env python3
"""CDK entry point: ``cdk synth|deploy -c stage=dev|prod`` builds one stack for that stage.

This is the only module that knows the stages and reads CDK context. It also registers the
cdk-nag AwsSolutions checks, so a synth with an unacknowledged finding fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lambda_src"))

from aws_cdk import App, RemovalPolicy, Validations
from aws_cdk import aws_logs as logs
from cdk_nag import AwsSolutionsChecks

from userstatus_stack.config import StageConfig
from userstatus_stack.stack import UserStatusStack, stack_name

DEFAULT_STAGE = "dev"

STAGES: dict[str, StageConfig] = {
    "dev": StageConfig(
        stage="dev",
        message_retention_days=7,
        throttle_rate_limit=20,
        throttle_burst_limit=40,
        cors_allowed_origins=("*",),
        log_retention=logs.RetentionDays.ONE_WEEK,
        removal_policy=RemovalPolicy.DESTROY,
        broadcast_memory_mb=512,
    ),
    "prod": StageConfig(
        stage="prod",
        message_retention_days=7,
        throttle_rate_limit=100,
        throttle_burst_limit=200,
        cors_allowed_origins=("https://www.photonranch.org", "https://photonranch.org"),
        log_retention=logs.RetentionDays.THREE_MONTHS,
        removal_policy=RemovalPolicy.RETAIN,
        broadcast_memory_mb=1024,
    ),
}


class UnknownStageError(ValueError):
    """``-c stage=...`` names no configured stage."""


def stage_config(stage: str) -> StageConfig:
    """The configuration of ``stage``; a clear error naming the valid stages otherwise."""
    try:
        return STAGES[stage]
    except KeyError:
        valid = ", ".join(sorted(STAGES))
        raise UnknownStageError(
            f"unknown stage {stage!r}: use -c stage=<{'|'.join(sorted(STAGES))}> "
            f"(configured stages: {valid})"
        ) from None


def build(app: App, config: StageConfig) -> UserStatusStack:
    """Add the stage's stack to ``app``."""
    name = stack_name(config.stage)
    return UserStatusStack(
        app,
        name,
        stack_name=name,
        config=config,
        description=f"photonranch user status relay ({config.stage})",
    )


def main() -> None:
    """Synthesize the stack of the stage given with ``-c stage=...``."""
    app = App()
    stage = app.node.try_get_context("stage") or DEFAULT_STAGE
    try:
        config = stage_config(str(stage))
    except UnknownStageError as error:
        sys.exit(f"error: {error}")
    build(app, config)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
