"""The targets under test: the local relay, and the dev stack deployed into ministack.

Each is started once per session, on free ports of 127.0.0.1, and stopped at the end. Tests
that take ``target`` form the contract suite and run on both; the others are the relay's own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.targets import DEPLOYED, RELAY, TARGETS, Target
from userstatus_local.deployed import DeployedStack
from userstatus_local.process import RelayProcess


@pytest.fixture(scope="session")
def relay() -> Iterator[RelayProcess]:
    """``python -m userstatus_local --http-port 0 --ws-port 0``, ready; Ctrl-C'd at the end."""
    with RelayProcess.start() as started:
        yield started


@pytest.fixture(scope="session")
def deployed_stack() -> Iterator[DeployedStack]:
    """The dev stack synthesized, bootstrapped and deployed into ministack (IAM checks recorded),
    with publish keys audited: every post is taken, as on an open stage, and the functions may
    read keys, so tests/e2e/test_contract_publish_keys.py can switch it to ``keys`` or ``open``
    by the functions' PUBLISH_AUTH variable without a second deployment."""
    with DeployedStack.start("dev", publish_auth="audit", record_iam=True) as stack:
        yield stack


@pytest.fixture(scope="session", params=TARGETS)
def target(request: pytest.FixtureRequest) -> Target:
    """Each target in turn: the relay, then the deployed stack."""
    if request.param == RELAY:
        return Target.relay(request.getfixturevalue("relay"))
    assert request.param == DEPLOYED
    return Target.deployed(request.getfixturevalue("deployed_stack"))


@pytest.fixture
def site() -> str:
    """A site code no other test uses, so tests sharing a target cannot see each other."""
    return "e2e-" + uuid.uuid4().hex[:12]
