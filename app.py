#!/usr/bin/env python3
"""CDK entry point: ``cdk synth|deploy -c stage=dev|prod`` builds one stack for that stage.

This is the only module that reads CDK context; the stages themselves are in
``userstatus_stack/stages.py`` (``STAGES``). It also registers the cdk-nag AwsSolutions checks,
so a synth with an unacknowledged finding fails.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from userstatus_stack.config import SharedDomain, StageConfig, StageConfigError
from userstatus_stack.stack import UserStatusStack
from userstatus_stack.stages import STAGES, stack_name

DEFAULT_STAGE = "dev"

# The existing URLs are https://logs.photonranch.org/<key>/newlog; prod owns the domain name.
API_MAPPING_KEYS: dict[str, str] = {"dev": "dev", "prod": "logs"}
DOMAIN_OWNER_STAGE = "prod"
LOGS_DOMAIN: SharedDomain | None = None


class UnknownStageError(ValueError):
    """``-c stage=...`` names no configured stage."""


def stage_config(stage: str, domain: SharedDomain | None = LOGS_DOMAIN) -> StageConfig:
    """The configuration of ``stage`` (mapped on ``domain`` if given); clear error if unknown."""
    try:
        config = STAGES[stage]
    except KeyError:
        raise UnknownStageError(
            f"unknown stage {stage!r}: use -c stage=<{'|'.join(sorted(STAGES))}>"
        ) from None
    if domain is None:
        return config
    custom_domain = domain.for_stage(
        API_MAPPING_KEYS[stage], owns_domain=stage == DOMAIN_OWNER_STAGE
    )
    return replace(config, custom_domain=custom_domain)


def with_alarm_destination(config: StageConfig, app: App) -> StageConfig:
    """``config`` with the alarm destination given as context (``-c alarm_email=ADDRESS`` or
    ``-c alarm_topic_arn=ARN``), which replaces the stage's own."""
    email = app.node.try_get_context("alarm_email")
    topic_arn = app.node.try_get_context("alarm_topic_arn")
    if email is None and topic_arn is None:
        return config
    return replace(
        config,
        alarm_email=None if email is None else str(email),
        alarm_topic_arn=None if topic_arn is None else str(topic_arn),
    )


def with_publish_auth(config: StageConfig, app: App) -> StageConfig:
    """``config`` with the publish mode given as context (``-c publish_auth=audit``), which
    replaces the stage's own: how an operator moves a stage open -> audit -> keys for one
    deploy before writing it into ``STAGES``."""
    mode = app.node.try_get_context("publish_auth")
    return config if mode is None else replace(config, publish_auth=str(mode))  # type: ignore[arg-type]


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
        config = with_alarm_destination(stage_config(str(stage)), app)
        build(app, with_publish_auth(config, app))
    except (UnknownStageError, StageConfigError) as error:
        sys.exit(f"error: {error}")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
