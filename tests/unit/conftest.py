"""Fixtures of the unit tests: environment, moto tables, the fake management API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from moto import mock_aws

from tests.fakes.lambda_context import FakeLambdaContext
from tests.fakes.management_api import FakeManagementApi
from userstatus import keys
from userstatus.runtime import runtime

MESSAGES_TABLE = "messages-test"
CONNECTIONS_TABLE = "connections-test"
PUBLISH_KEYS_TABLE = "publish-keys-test"

# Parsing botocore's service models costs ~0.1 s a client; share one loader across tests.
_SHARED_LOADER = botocore.loaders.create_loader()
_BotoSession = boto3.session.Session


def _session_with_shared_loader(*args: Any, **kwargs: Any) -> boto3.session.Session:
    core = botocore.session.get_session()
    core.register_component("data_loader", _SHARED_LOADER)
    return _BotoSession(*args, botocore_session=core, **kwargs)


@pytest.fixture
def management_api() -> Iterator[FakeManagementApi]:
    with FakeManagementApi() as fake:
        yield fake


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, management_api: FakeManagementApi) -> Iterator[None]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MESSAGES_TABLE", MESSAGES_TABLE)
    monkeypatch.setenv("CONNECTIONS_TABLE", CONNECTIONS_TABLE)
    monkeypatch.setenv("PUBLISH_KEYS_TABLE", PUBLISH_KEYS_TABLE)
    monkeypatch.delenv("PUBLISH_AUTH", raising=False)
    monkeypatch.setenv("WEBSOCKET_MANAGEMENT_ENDPOINT", management_api.endpoint)
    monkeypatch.setattr(boto3.session, "Session", _session_with_shared_loader)
    runtime.cache_clear()
    yield
    if runtime.cache_info().currsize and "poster" in vars(runtime()):
        runtime().poster.close()
    runtime.cache_clear()


@pytest.fixture
def dynamodb(env: None) -> Iterator[Any]:
    """A moto DynamoDB with the three tables, created from the stack's key definitions."""
    with mock_aws():
        client = boto3.session.Session().client("dynamodb", region_name="us-east-1")
        client.create_table(**keys.MESSAGES.create_table_kwargs(MESSAGES_TABLE))
        client.create_table(**keys.CONNECTIONS.create_table_kwargs(CONNECTIONS_TABLE))
        client.create_table(**keys.PUBLISH_KEYS.create_table_kwargs(PUBLISH_KEYS_TABLE))
        yield client


@pytest.fixture
def context() -> FakeLambdaContext:
    return FakeLambdaContext()
