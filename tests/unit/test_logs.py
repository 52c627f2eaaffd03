"""Log levels: the function's configured level (Lambda's setting) comes before the default."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from userstatus.logs import configure_logging


@pytest.fixture(autouse=True)
def root_level() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.level
    yield
    root.setLevel(saved)


@pytest.mark.parametrize(
    ("lambda_level", "log_level", "expected"),
    [
        # Lambda sets AWS_LAMBDA_LOG_LEVEL from the function's application log level.
        ("ERROR", None, logging.ERROR),
        ("DEBUG", "ERROR", logging.DEBUG),
        ("WARN", None, logging.WARNING),
        ("TRACE", None, logging.DEBUG),
        ("FATAL", None, logging.CRITICAL),
        (None, "warning", logging.WARNING),
        (None, None, logging.INFO),
        ("LOUD", None, logging.INFO),
    ],
)
def test_configured_level_is_honoured(
    monkeypatch: pytest.MonkeyPatch, lambda_level: str | None, log_level: str | None, expected: int
) -> None:
    for name, value in (("AWS_LAMBDA_LOG_LEVEL", lambda_level), ("LOG_LEVEL", log_level)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    configure_logging()
    assert logging.getLogger().level == expected
