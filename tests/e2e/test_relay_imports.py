"""``userstatus_local`` has no import circle, counting imports inside functions too.

A circle (the orchestrator importing the server that imports the orchestrator for a constant)
makes the import order matter and hides which module owns what.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "userstatus_local"


def imports_of(path: Path) -> set[str]:
    """The ``userstatus_local`` modules a module imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("userstatus_local."):
                found.add(name.removeprefix("userstatus_local.").split(".")[0])
    return found


def test_no_module_of_the_relay_imports_itself_back() -> None:
    graph = {path.stem: imports_of(path) for path in PACKAGE.glob("*.py")}
    circles = []
    for start in graph:
        # Every module reachable from ``start``; a path back to ``start`` is a circle.
        stack = [(start, [start])]
        seen = set()
        while stack:
            module, route = stack.pop()
            for imported in sorted(graph.get(module, ())):
                if imported == start:
                    circles.append(" -> ".join([*route, start]))
                elif imported not in seen:
                    seen.add(imported)
                    stack.append((imported, [*route, imported]))
    assert circles == []
