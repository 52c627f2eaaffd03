"""Fixtures for the client tests: a fake relay, and the client importable from its source tree.

When the package is not installed (``pip install -e ./userstatus_client``), its ``src`` folder is
put on ``sys.path`` so ``python -m pytest tests/client`` works from a plain checkout.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CLIENT_SRC = Path(__file__).resolve().parents[2] / "userstatus_client" / "src"

_spec = importlib.util.find_spec("userstatus_client")
if _spec is None or _spec.origin is None:  # missing, or only the project folder as a namespace
    sys.path.insert(0, str(CLIENT_SRC))
    sys.modules.pop("userstatus_client", None)

from tests.fakes.fake_relay import FakeRelay  # noqa: E402


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
    env["PYTHONPATH"] = os.pathsep.join([str(CLIENT_SRC), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env
