"""cfn-lint on every synthesized template: no errors."""

from __future__ import annotations

import json

from cfnlint.api import lint_all

from tests.infra.infra_stacks import Synthesized


def errors(synthesized: Synthesized) -> list[str]:
    """cfn-lint errors (rule ids starting with E) as 'rule: message'."""
    matches = lint_all(json.dumps(synthesized.json))
    return [f"{m.rule.id}: {m.message}" for m in matches if m.rule.id.startswith("E")]


def test_stage_template_has_no_cfn_lint_errors(synthesized: Synthesized) -> None:
    assert errors(synthesized) == []


def test_variant_template_has_no_cfn_lint_errors(variant: Synthesized) -> None:
    assert errors(variant) == []
