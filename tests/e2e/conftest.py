"""The relay under test: one child process on free ports for the whole session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from userstatus_local.process import RelayProcess


@pytest.fixture(scope="session")
def relay() -> Iterator[RelayProcess]:
    """``python -m userstatus_local --http-port 0 --ws-port 0``, ready; Ctrl-C'd at the end."""
    with RelayProcess.start() as started:
        yield started


@pytest.fixture
def site() -> str:
    """A site code no other test uses, so tests sharing the relay cannot see each other."""
    return "e2e-" + uuid.uuid4().hex[:12]
