"""Checks that a pinned library still has the internals the relay patches or relies on."""

from __future__ import annotations

import inspect
from collections.abc import Iterable

# An owner (module or class), an attribute name, and the parameter names it was written
# against (None: only that it exists).
Internal = tuple[object, str, tuple[str, ...] | None]


def changed(internals: Iterable[Internal]) -> list[str]:
    """What is gone or takes other parameters, each named ``Owner.name``."""
    problems = []
    for owner, name, parameters in internals:
        where = f"{getattr(owner, '__name__', owner)}.{name}"
        if not hasattr(owner, name):
            problems.append(f"{where} is gone")
            continue
        if parameters is not None:
            found = tuple(inspect.signature(getattr(owner, name)).parameters)
            if found != parameters:
                problems.append(f"{where} takes {found}, not {parameters}")
    return problems
