"""Fixtures: each stage's stack is synthesized once per test session (jsii makes synth slow)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from tests.infra.infra_stacks import (
    STAGES,
    TEST_DOMAIN,
    VARIANTS,
    Synthesized,
    deployable_config,
    synthesize_stage,
    variant_config,
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
    return synthesize(variant_config("iam"))


@pytest.fixture(scope="session")
def keys_variant(synthesize: Callable[[StageConfig], Synthesized]) -> Synthesized:
    """dev with ``publish_auth='keys'`` and an alarm topic."""
    return synthesize(variant_config("keys"))


@pytest.fixture(scope="session", params=STAGES)
def domain_variant(
    request: pytest.FixtureRequest, synthesize: Callable[[StageConfig], Synthesized]
) -> Synthesized:
    """Each stage with the custom domain switched on."""
    return synthesize(deployable_config(request.param, domain=TEST_DOMAIN))


@pytest.fixture(scope="session", params=VARIANTS)
def variant(
    request: pytest.FixtureRequest, synthesize: Callable[[StageConfig], Synthesized]
) -> Synthesized:
    """Each non-default variant once: dev with IAM post auth, dev with publish keys, each stage
    with the domain."""
    return synthesize(variant_config(request.param))
