"""Python logging levels and level names mapped to the relay's five levels."""

from __future__ import annotations

import logging

import pytest

from userstatus_client import normalize_level, relay_level_for


@pytest.mark.parametrize(
    ("levelno", "expected"),
    [
        (0, "debug"),
        (5, "debug"),
        (logging.DEBUG, "debug"),
        (15, "debug"),
        (logging.INFO, "info"),
        (25, "info"),
        (logging.WARNING, "warning"),
        (39, "warning"),
        (logging.ERROR, "error"),
        (45, "error"),
        (logging.CRITICAL, "critical"),
        (60, "critical"),
    ],
)
def test_logging_levels_round_down_to_a_relay_level(levelno: int, expected: str) -> None:
    assert relay_level_for(levelno) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("INFO", "info"), (" Warning ", "warning"), ("warn", "warning"), ("FATAL", "critical")],
)
def test_level_names_in_any_case_and_aliases(name: str, expected: str) -> None:
    assert normalize_level(name) == expected


@pytest.mark.parametrize("bad", ["notice", "", True])
def test_unknown_levels_are_refused(bad: str | bool) -> None:
    with pytest.raises(ValueError, match="level"):
        normalize_level(bad)
