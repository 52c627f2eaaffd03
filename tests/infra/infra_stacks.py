"""Synthesized stacks of the infra tests: what a stage built, and the test-only settings."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aws_cdk import App
from aws_cdk.assertions import Template

import app as cdk_app
from userstatus_stack.config import SharedDomain, StageConfig
from userstatus_stack.stack import UserStatusStack

REPO_ROOT = Path(__file__).resolve().parents[2]
STAGES = tuple(sorted(cdk_app.STAGES))

TEST_DOMAIN = SharedDomain(
    domain_name="logs.example.org",
    certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
    hosted_zone_id="Z0000000000EXAMPLE",
    hosted_zone_name="example.org",
)
TEST_ALARM_TOPIC = "arn:aws:sns:us-east-1:123456789012:userstatus-alarms"
TEST_ALARM_EMAIL = "alarms@example.org"


def deployable_config(stage: str, domain: SharedDomain | None = None) -> StageConfig:
    """``stage``'s config as deployed: a stage that requires an alarm destination gets
    TEST_ALARM_EMAIL, as ``cdk deploy -c stage=... -c alarm_email=...`` gives it."""
    config = cdk_app.stage_config(stage, domain=domain)
    if config.alarm_destination_required:
        return replace(config, alarm_email=TEST_ALARM_EMAIL)
    return config


# The non-default variants: dev with IAM post auth, dev with publish keys (both with an alarm
# topic), each stage with the custom domain.
VARIANTS = ("iam", "keys", *(f"domain-{stage}" for stage in STAGES))


def variant_config(name: str) -> StageConfig:
    """The config of one of VARIANTS."""
    if name == "iam":
        return replace(
            cdk_app.stage_config("dev"), post_auth="iam", alarm_topic_arn=TEST_ALARM_TOPIC
        )
    if name == "keys":
        return replace(
            cdk_app.stage_config("dev"), publish_auth="keys", alarm_topic_arn=TEST_ALARM_TOPIC
        )
    if name.removeprefix("domain-") in STAGES:
        return deployable_config(name.removeprefix("domain-"), domain=TEST_DOMAIN)
    raise ValueError(f"no variant {name!r}: one of {', '.join(VARIANTS)}")


@dataclass(frozen=True)
class Synthesized:
    """One stage's app, stack and template."""

    config: StageConfig
    app: App
    stack: UserStatusStack
    template: Template
    json: dict[str, Any]

    def logical_id(self, construct: Any) -> str:
        """The logical id of a construct's CloudFormation resource."""
        return self.stack.get_logical_id(construct.node.default_child)


def cdk_json_context() -> dict[str, Any]:
    """The feature flags of cdk.json, so tests synthesize what `cdk synth` does."""
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return context


def synthesize_stage(config: StageConfig) -> Synthesized:
    """Build ``config``'s stack in a fresh app with cdk.json's context and synthesize it."""
    cdk = App(context=cdk_json_context())
    stack = cdk_app.build(cdk, config)
    template = Template.from_stack(stack)
    return Synthesized(config, cdk, stack, template, dict(template.to_json()))
