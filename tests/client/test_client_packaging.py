"""The package stays usable on Python 3.9 and declares what ``pip install`` needs."""

from __future__ import annotations

import ast
import importlib
import sys
import tomllib
from pathlib import Path

import pytest

from userstatus_client import http_api

PROJECT = Path(__file__).resolve().parents[2] / "userstatus_client"
SOURCES = sorted((PROJECT / "src" / "userstatus_client").glob("*.py"))


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.name)
def test_sources_parse_as_python_3_9(source: Path) -> None:
    tree = ast.parse(source.read_text(encoding="utf-8"), feature_version=(3, 9))
    assert ast.get_docstring(tree), f"{source.name} needs a module docstring"


def test_runtime_needs_only_the_standard_library_and_follow_needs_websockets() -> None:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["dependencies"] == []
    assert [d.split(">")[0] for d in project["optional-dependencies"]["follow"]] == ["websockets"]
    assert project["requires-python"] == ">=3.9"
    assert project["scripts"] == {"userstatus": "userstatus_client.cli:main"}


def test_the_old_module_name_still_imports_and_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "userstatus_client.relay", raising=False)
    with pytest.warns(DeprecationWarning, match="renamed userstatus_client.http_api"):
        old = importlib.import_module("userstatus_client.relay")

    assert old.__all__ == http_api.__all__
    assert all(getattr(old, name) is getattr(http_api, name) for name in http_api.__all__)
