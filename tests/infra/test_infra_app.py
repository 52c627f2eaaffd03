"""app.py: stage selection, stage differences and the config's validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
from aws_cdk import App, RemovalPolicy

import app as cdk_app
from tests.infra.infra_stacks import REPO_ROOT, TEST_ALARM_TOPIC, TEST_DOMAIN, cdk_json_context
from userstatus_stack.config import StageConfig, StageConfigError
from userstatus_stack.stages import stack_name


def test_unknown_stage_is_a_clear_error() -> None:
    with pytest.raises(cdk_app.UnknownStageError, match=r"unknown stage 'qa'.*dev\|prod"):
        cdk_app.stage_config("qa")


def run_app(**context: str) -> subprocess.CompletedProcess[str]:
    """``python app.py`` as ``cdk synth -c KEY=VALUE...`` runs it."""
    return subprocess.run(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps({**cdk_json_context(), **context})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_app_exits_with_the_error_for_an_unknown_stage() -> None:
    result = run_app(stage="qa")
    assert result.returncode == 1
    assert "unknown stage 'qa'" in result.stderr


def test_stack_name_carries_the_stage() -> None:
    assert stack_name("prod") == "photonranch-userstatus-prod"


def test_prod_retains_and_dev_destroys() -> None:
    assert cdk_app.stage_config("prod").removal_policy == RemovalPolicy.RETAIN
    assert cdk_app.stage_config("dev").removal_policy == RemovalPolicy.DESTROY


def test_stages_are_open_to_posts_and_have_no_domain_by_default() -> None:
    for stage in cdk_app.STAGES:
        config = cdk_app.stage_config(stage)
        assert config.post_auth == "none"
        assert config.publish_auth == "open"
        assert config.custom_domain is None


def test_domain_mapping_keys_match_the_existing_urls() -> None:
    prod = cdk_app.stage_config("prod", domain=TEST_DOMAIN).custom_domain
    dev = cdk_app.stage_config("dev", domain=TEST_DOMAIN).custom_domain
    assert prod is not None
    assert dev is not None
    assert (prod.api_mapping_key, prod.owns_domain) == ("logs", True)
    assert (dev.api_mapping_key, dev.owns_domain) == ("dev", False)


@pytest.mark.parametrize(
    "change",
    [
        {"post_auth": "cognito"},
        {"publish_auth": "closed"},
        {"cors_allowed_origins": ()},
        {"broadcast_batching_window_seconds": 301},
        {"broadcast_max_record_age_seconds": 10},
        {"api_timeout_seconds": 30},
        {"api_timeout_seconds": 5},
        {"stage": "Prod!"},
        {"alarm_topic_arn": "ops-topic"},
        {"alarm_email": "ops"},
        {"alarm_email": "ops@example.org", "alarm_topic_arn": TEST_ALARM_TOPIC},
    ],
)
def test_invalid_stage_config_is_rejected(change: dict[str, object]) -> None:
    with pytest.raises(StageConfigError):
        replace(StageConfig(stage="dev"), **change)  # type: ignore[arg-type]


def test_prod_refuses_to_synth_without_an_alarm_destination() -> None:
    # Given prod, which must say where its alarms go, with none given
    config = cdk_app.stage_config("prod")
    assert (config.alarm_email, config.alarm_topic_arn) == (None, None)
    # Then building it fails, saying how to give one
    with pytest.raises(StageConfigError, match=r"-c alarm_email=ADDRESS .* -c alarm_topic_arn=ARN"):
        cdk_app.build(App(), config)


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"alarm_email": "ops@example.org"}, ("ops@example.org", None)),
        ({"alarm_topic_arn": TEST_ALARM_TOPIC}, (None, TEST_ALARM_TOPIC)),
        ({}, (None, None)),
    ],
)
def test_the_alarm_destination_comes_from_cdk_context(
    context: dict[str, str], expected: tuple[str | None, str | None]
) -> None:
    config = cdk_app.with_alarm_destination(cdk_app.stage_config("prod"), App(context=context))
    assert (config.alarm_email, config.alarm_topic_arn) == expected


@pytest.mark.parametrize(
    ("context", "expected"), [({"publish_auth": "audit"}, "audit"), ({}, "open")]
)
def test_the_publish_mode_comes_from_cdk_context(context: dict[str, str], expected: str) -> None:
    config = cdk_app.with_publish_auth(cdk_app.stage_config("dev"), App(context=context))
    assert config.publish_auth == expected


def test_cdk_synth_with_an_unknown_publish_mode_exits_with_the_reason() -> None:
    result = run_app(stage="dev", publish_auth="closed")
    assert result.returncode == 1
    assert "error: publish_auth must be one of open, audit, keys, got 'closed'" in result.stderr


def test_cdk_synth_of_prod_without_alarm_destination_exits_with_the_reason() -> None:
    result = run_app(stage="prod")
    assert result.returncode == 1
    assert "error: stage prod must say where its alarms go" in result.stderr


def test_the_stages_are_read_without_starting_jsii() -> None:
    # The local relay reads the stages: importing them must not import aws_cdk (which starts a
    # Node.js process).
    check = (
        "import sys, userstatus_stack.stages; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aws_cdk', 'jsii')))"
    )
    result = subprocess.run(  # noqa: S603 (this interpreter, a fixed program)
        [sys.executable, "-c", check],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "lambda_src")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]"
