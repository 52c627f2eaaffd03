"""Each stage's whole template as a reviewed snapshot (update: pytest --snapshot-update)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

import app as cdk_app
from tests.infra.infra_stacks import Synthesized, synthesize_stage
from tests.infra.infra_template import ASSET_HASH, ASSET_HASH_PLACEHOLDER, normalised
from userstatus_stack import functions
from userstatus_stack.config import StageConfig


@pytest.fixture
def json_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots stored as JSON files, readable in a diff."""
    return snapshot.use_extension(JSONSnapshotExtension)


def test_template_snapshot(synthesized: Synthesized, json_snapshot: SnapshotAssertion) -> None:
    assert normalised(synthesized.json) == json_snapshot


def test_normalising_removes_every_asset_hash(synthesized: Synthesized) -> None:
    text = str(synthesized.json)
    assert ASSET_HASH.search(text)
    assert not ASSET_HASH.search(str(normalised(synthesized.json)))
    assert ASSET_HASH_PLACEHOLDER + ".zip" in str(normalised(synthesized.json))


def test_editing_lambda_code_leaves_the_normalised_template_unchanged(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    synthesize: Callable[[StageConfig], Synthesized],
) -> None:
    # Given a copy of lambda_src with one handler edited
    edited_src = tmp_path / "lambda_src"
    shutil.copytree(
        functions.LAMBDA_SOURCE_DIR, edited_src, ignore=shutil.ignore_patterns("__pycache__")
    )
    with (edited_src / "userstatus" / "__init__.py").open("a") as init:
        init.write("\nEDITED_FOR_SNAPSHOT_TEST = True\n")
    original = synthesize(cdk_app.stage_config("dev"))

    # When the stack is synthesized from the copy
    monkeypatch.setattr(functions, "LAMBDA_SOURCE_DIR", edited_src)
    edited = synthesize_stage(cdk_app.stage_config("dev"))

    # Then the asset hash changed but the normalised template did not
    assert edited.json != original.json
    assert normalised(edited.json) == normalised(original.json)
