"""Fixtures for the client tests: a fake relay on free ports, and a clean environment.

The client is installed editable into .venv (``make setup``: ``pip install -e
./userstatus_client``), as a user installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fakes.fake_relay import FakeRelay


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    """A running fake relay on free ports."""
    with FakeRelay() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _no_relay_urls_from_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USERSTATUS_URL", raising=False)
    monkeypatch.delenv("USERSTATUS_WS_URL", raising=False)
    monkeypatch.delenv("USERSTATUS_KEY", raising=False)


@pytest.fixture
def client_env() -> dict[str, str]:
    """Environment for a ``python -m userstatus_client`` subprocess, without relay URLs set."""
    env = {k: v for k, v in os.environ.items() if k != "USERSTATUS_KEY"}
    env["PYTHONUNBUFFERED"] = "1"
    return env
