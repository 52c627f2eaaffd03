"""checkov and the AWS Control Tower controls (cfn-guard) on each stage's and variant's
template: every finding is fixed or acknowledged where the resource is built
(``userstatus_stack.nag.acknowledge``), and every acknowledgement still matches a finding.

Both tools run offline on the synthesized templates with the acknowledgements taken out, once
for all templates; the acknowledgements are then matched here, the same way for both tools.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra.infra_stacks import (
    STAGES,
    VARIANTS,
    Synthesized,
    deployable_config,
    variant_config,
)
from userstatus_stack.config import StageConfig
from userstatus_stack.nag import CHECKOV_METADATA, GUARD_METADATA

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
CFN_GUARD_PACKAGE = ROOT / ".tools" / "node_modules" / "@cdklabs" / "cdk-validator-cfnguard"
CFN_GUARD = CFN_GUARD_PACKAGE / "bin" / "ubuntu" / platform.machine() / "cfn-guard"
CONTROL_TOWER_RULES = CFN_GUARD_PACKAGE / "rules" / "control-tower" / "cfn-guard"
# cfn-guard's exit status when every rule passed or was not applicable, and when one failed.
GUARD_PASSED, GUARD_FAILED = 0, 19
CONTROL_ID = re.compile(r"\[(CT\.[A-Z0-9]+\.PR\.\d+)\]")


@dataclass(frozen=True, order=True)
class Finding:
    template: str  # the stage (or probe) name
    rule: str  # CKV_AWS_N or CT.SERVICE.PR.N
    resource: str  # logical id

    def __str__(self) -> str:
        return f"{self.template}: {self.rule} on {self.resource}"


def write_templates(templates: Mapping[str, Mapping[str, Any]], directory: Path) -> None:
    """Each template as ``<name>.json``, without the acknowledgements (the tools see all)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, template in templates.items():
        stripped = json.loads(json.dumps(template))
        for resource in stripped["Resources"].values():
            metadata = resource.get("Metadata", {})
            metadata.pop(CHECKOV_METADATA, None)
            metadata.pop(GUARD_METADATA, None)
        (directory / f"{name}.json").write_text(json.dumps(stripped))


def checkov_findings(directory: Path) -> set[Finding]:
    """checkov's failed checks on every template in ``directory`` (offline: no download)."""
    command = [str(CHECKOV), "--directory", str(directory), "--framework", "cloudformation"]
    done = subprocess.run(  # noqa: S603 (the project's pinned checkov, fixed arguments)
        [*command, "--skip-download", "--quiet", "--compact", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    return {
        Finding(
            Path(check["file_abs_path"]).stem,
            check["check_id"],
            check["resource"].split(".", 1)[1],
        )
        for part in reports
        for check in part["results"]["failed_checks"]
    }


def guard_findings(directory: Path) -> set[Finding]:
    """The Control Tower controls that fail, by control id, on every template in ``directory``."""
    templates = sorted(directory.glob("*.json"))
    command = [str(CFN_GUARD), "validate", "--rules", str(CONTROL_TOWER_RULES)]
    for template in templates:
        command += ["--data", str(template)]
    done = subprocess.run(  # noqa: S603 (the pinned cfn-guard, fixed arguments)
        [*command, "--output-format", "json", "--show-summary", "none"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode in (GUARD_PASSED, GUARD_FAILED), done.stderr[-2000:]
    found = set()
    for report in _json_documents(done.stdout):
        template = Path(report["name"]).stem
        for failure in report["not_compliant"]:
            control = CONTROL_ID.search(json.dumps(failure))
            assert control is not None, f"no Control Tower id in {failure['Rule']['name']}"
            found |= {Finding(template, control[1], r) for r in _resources(failure)}
    return found


def acknowledged(templates: Mapping[str, Mapping[str, Any]]) -> dict[Finding, str]:
    """Every checkov and Control Tower acknowledgement in the templates, with its reason."""
    found = {}
    for name, template in templates.items():
        for logical_id, resource in template["Resources"].items():
            metadata = resource.get("Metadata", {})
            for skip in metadata.get(CHECKOV_METADATA, {}).get("skip", []):
                found[Finding(name, skip["id"], logical_id)] = skip["comment"]
            for ack in metadata.get(GUARD_METADATA, {}).get("acknowledged", []):
                found[Finding(name, ack["control"], logical_id)] = ack["reason"]
    return found


def _json_documents(text: str) -> Iterable[dict[str, Any]]:
    """cfn-guard prints one JSON document per rule file, one after the other."""
    decoder, position = json.JSONDecoder(), 0
    while (position := _skip_space(text, position)) < len(text):
        document, position = decoder.raw_decode(text, position)
        yield document


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _resources(value: Any) -> set[str]:
    """Logical ids of the ``/Resources/<id>/...`` paths a cfn-guard failure names."""
    if isinstance(value, dict):
        found = set()
        path = value.get("path")
        if isinstance(path, str) and path.startswith("/Resources/"):
            found.add(path.split("/")[2])
        for item in value.values():
            found |= _resources(item)
        return found
    if isinstance(value, list):
        return set().union(*(_resources(item) for item in value))
    return set()


@dataclass(frozen=True)
class GateRun:
    checkov: set[Finding]
    guard: set[Finding]
    acknowledged: dict[Finding, str]


@pytest.fixture(scope="module")
def gates(
    tmp_path_factory: pytest.TempPathFactory, synthesize: Callable[[StageConfig], Synthesized]
) -> GateRun:
    """Both tools on every stage's and variant's template, once."""
    configs = {stage: deployable_config(stage) for stage in STAGES}
    configs |= {name: variant_config(name) for name in VARIANTS}
    templates = {name: synthesize(config).json for name, config in configs.items()}
    directory = tmp_path_factory.mktemp("gates")
    write_templates(templates, directory)
    return GateRun(checkov_findings(directory), guard_findings(directory), acknowledged(templates))


def test_checkov_finds_nothing_unacknowledged(gates: GateRun) -> None:
    assert sorted(map(str, gates.checkov - gates.acknowledged.keys())) == []


def test_control_tower_controls_find_nothing_unacknowledged(gates: GateRun) -> None:
    assert sorted(map(str, gates.guard - gates.acknowledged.keys())) == []


def test_every_acknowledgement_matches_a_finding(gates: GateRun) -> None:
    # An acknowledgement nothing needs (the finding was fixed, or the rule id is wrong) goes.
    assert sorted(map(str, gates.acknowledged.keys() - gates.checkov - gates.guard)) == []


def test_acknowledgements_give_a_reason(gates: GateRun) -> None:
    assert gates.acknowledged
    for finding, reason in gates.acknowledged.items():
        assert len(reason.split()) >= 10, f"{finding}: {reason!r}"


def test_every_stage_and_variant_was_checked(gates: GateRun) -> None:
    assert {f.template for f in gates.checkov} == {*STAGES, *VARIANTS}
    assert {f.template for f in gates.guard} == {*STAGES, *VARIANTS}


def test_the_gates_do_report_findings(tmp_path: Path) -> None:
    # A queue with neither encryption nor a dead-letter queue, and a log group kept a day: both
    # tools must flag them, or the empty differences above would prove nothing.
    probe = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"SqsManagedSseEnabled": False}},
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 1}},
        }
    }
    write_templates({"probe": probe}, tmp_path)
    assert Finding("probe", "CKV_AWS_27", "Queue") in checkov_findings(tmp_path)
    assert {
        Finding("probe", "CT.SQS.PR.1", "Queue"),
        Finding("probe", "CT.CLOUDWATCH.PR.2", "Logs"),
    } <= (guard_findings(tmp_path))
