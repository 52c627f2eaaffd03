"""Fixtures: each stage's stack is synthesized once per test session (jsii makes synth slow)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace

import pytest

import app as cdk_app
from tests.infra.infra_stacks import (
    STAGES,
    TEST_ALARM_TOPIC,
    TEST_DOMAIN,
    Synthesized,
    deployable_config,
    synthesize_stage,
)
from userstatus_stack.config import StageConfig


@pytest.fixture(scope="session")
def synthesize() -> Callable[[StageConfig], Synthesized]:
    """Synthesize a stage config (cached: each distinct config is synthesized once)."""
    return functools.cache(synthesize_stage)


@pytest.fixture(scope="session", params=STAGES)
def stage(request: pytest.FixtureRequest) -> str:
    """Each configured stage in turn."""
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def synthesized(stage: str, synthesize: Callable[[StageConfig], Synthesized]) -> Synthesized:
    """The stack of the stage under test, exactly as ``cdk synth -c stage=...`` builds it."""
    return synthesize(deployable_config(stage))


@pytest.fixture(scope="session")
def iam_variant(synthesize: Callable[[StageConfig], Synthesized]) -> Synthesized:
    """dev with ``post_auth='iam'`` and an alarm topic."""
    config = replace(cdk_app.stage_config("dev"), post_auth="iam", alarm_topic_arn=TEST_ALARM_TOPIC)
    return synthesize(config)


@pytest.fixture(scope="session")
def keys_variant(synthesize: Callable[[StageConfig], Synthesized]) -> Synthesized:
    """dev with ``publish_auth='keys'`` and an alarm topic."""
    return synthesize(_keys_config())


@pytest.fixture(scope="session", params=STAGES)
def domain_variant(
    request: pytest.FixtureRequest, synthesize: Callable[[StageConfig], Synthesized]
) -> Synthesized:
    """Each stage with the custom domain switched on."""
    return synthesize(deployable_config(request.param, domain=TEST_DOMAIN))


@pytest.fixture(scope="session", params=["iam", "keys", *(f"domain-{stage}" for stage in STAGES)])
def variant(
    request: pytest.FixtureRequest, synthesize: Callable[[StageConfig], Synthesized]
) -> Synthesized:
    """Each non-default variant once: dev with IAM post auth, dev with publish keys, each stage
    with the domain."""
    name: str = request.param
    if name == "iam":
        return synthesize(_iam_config())
    if name == "keys":
        return synthesize(_keys_config())
    return synthesize(deployable_config(name.removeprefix("domain-"), domain=TEST_DOMAIN))


def _keys_config() -> StageConfig:
    return replace(
        cdk_app.stage_config("dev"), publish_auth="keys", alarm_topic_arn=TEST_ALARM_TOPIC
    )


def _iam_config() -> StageConfig:
    return replace(cdk_app.stage_config("dev"), post_auth="iam", alarm_topic_arn=TEST_ALARM_TOPIC)
