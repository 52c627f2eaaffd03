"""cdk-nag AwsSolutions: no unacknowledged finding, and every acknowledgement is narrow."""

from __future__ import annotations

import re

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from tests.infra.infra_stacks import Synthesized

ACKNOWLEDGED = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
RULE_ID = re.compile(r"^(Annotation::)?AwsSolutions-[A-Z]+\d+(\[.+\])?$")


def violations(synthesized: Synthesized) -> list[str]:
    """Every unacknowledged finding as 'rule at path'."""
    report = AwsSolutionsChecks().validate_scope(synthesized.app)
    return [
        f"{violation.rule_name} at {resource.construct_path}"
        for violation in report.violations
        for resource in violation.violating_resources
    ]


def acknowledgements(synthesized: Synthesized) -> dict[tuple[str, str], str]:
    """(construct path, rule id) to reason, for every acknowledgement in the stack."""
    found = {}
    for construct in synthesized.stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == ACKNOWLEDGED:
                for rule_id, reason in entry.data.items():
                    found[(construct.node.path, rule_id)] = reason
    return found


def test_stage_has_no_unacknowledged_findings(synthesized: Synthesized) -> None:
    assert violations(synthesized) == []


def test_variant_has_no_unacknowledged_findings(variant: Synthesized) -> None:
    assert violations(variant) == []


def test_the_checks_do_report_findings() -> None:
    # Given a queue without SSL enforcement or a dead-letter queue, the pack must flag it;
    # otherwise the empty reports above would prove nothing.
    app = App()
    sqs.Queue(Stack(app, "Probe"), "Queue")
    report = AwsSolutionsChecks().validate_scope(app)
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= {v.rule_name for v in report.violations}


def test_acknowledgements_are_narrow_and_reasoned(synthesized: Synthesized) -> None:
    acks = acknowledgements(synthesized)
    assert acks
    for (path, rule_id), reason in acks.items():
        assert RULE_ID.match(rule_id), rule_id
        if "IAM5" in rule_id:
            assert "[Resource::" in rule_id, f"{path}: acknowledge one IAM5 finding, not the rule"
        assert len(reason) >= 60, f"{path} {rule_id}: reason too short"
        assert path.startswith(f"{synthesized.stack.node.path}/"), "no stack-wide acknowledgement"


@pytest.mark.parametrize(
    ("rule", "expected_count"),
    [
        ("AwsSolutions-APIG4", 7),
        # No wildcard on a table: each grant names the table or the one index it uses.
        ("AwsSolutions-IAM5[Resource::<", 0),
        # ManageConnections on @connections/*: the broadcaster and the fan-out function.
        ("AwsSolutions-IAM5[Resource::arn:", 2),
        ("AwsSolutions-IAM5[Resource::*]", 1),
        ("AwsSolutions-SQS3", 1),
        ("AwsSolutions-DDB3", 1),
    ],
)
def test_acknowledgement_counts(synthesized: Synthesized, rule: str, expected_count: int) -> None:
    # A new acknowledgement must be reviewed: it changes these counts.
    rule_ids = [
        rule_id.removeprefix("Annotation::") for _, rule_id in acknowledgements(synthesized)
    ]
    assert sum(rule_id.startswith(rule) for rule_id in rule_ids) == expected_count
    assert sum(rule_id.startswith("AwsSolutions-") for rule_id in rule_ids) == 17
