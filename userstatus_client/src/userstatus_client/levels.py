"""The relay's five log levels and how Python logging levels and level names map onto them."""

from __future__ import annotations

import logging

RELAY_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")
"""The levels the relay stores, least severe first."""

_ALIASES = {"warn": "warning", "fatal": "critical"}

_THRESHOLDS: tuple[tuple[int, str], ...] = (
    (logging.CRITICAL, "critical"),
    (logging.ERROR, "error"),
    (logging.WARNING, "warning"),
    (logging.INFO, "info"),
)


def relay_level_for(levelno: int) -> str:
    """Map a Python logging level number to a relay level, rounding down (below DEBUG: debug)."""
    for threshold, name in _THRESHOLDS:
        if levelno >= threshold:
            return name
    return "debug"


def normalize_level(level: str | int) -> str:
    """Return the relay level for a level name (any case, ``warn``/``fatal`` too) or number.

    Raises ValueError for an unknown name, so a typo fails before anything is sent.
    """
    if isinstance(level, bool):
        raise ValueError(f"not a log level: {level!r}")
    if isinstance(level, int):
        return relay_level_for(level)
    name = level.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in RELAY_LEVELS:
        choices = ", ".join(RELAY_LEVELS)
        raise ValueError(f"unknown log level {level!r}: use one of {choices} (or warn, fatal)")
    return name
