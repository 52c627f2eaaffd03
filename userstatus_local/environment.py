"""The process environment the Lambda handlers read, set before any ``userstatus`` import.

The handlers read their configuration once per process (``userstatus.runtime.runtime()`` is
cached), from the same variables the stack sets on the functions, and reach DynamoDB through
boto3's service-specific endpoint variables.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


def configure_environment(
    *,
    dynamodb_endpoint: str,
    management_endpoint: str,
    messages_table: str,
    connections_table: str,
    publish_keys_table: str,
    embedded: bool,
    retention_days: int = 7,
    environ: MutableMapping[str, str] | None = None,
) -> None:
    """Point the handlers at the relay's tables, DynamoDB and management API.

    With the embedded DynamoDB, dummy credentials replace any others, so no credential
    provider (profiles, SSO, instance metadata) is ever asked and nothing reaches AWS. With
    another endpoint the caller's credentials are kept, dummies only filling in for none.
    """
    env = os.environ if environ is None else environ
    env["MESSAGES_TABLE"] = messages_table
    env["CONNECTIONS_TABLE"] = connections_table
    env["PUBLISH_KEYS_TABLE"] = publish_keys_table
    env["WEBSOCKET_MANAGEMENT_ENDPOINT"] = management_endpoint
    env["MESSAGE_RETENTION_DAYS"] = str(retention_days)
    env["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_endpoint
    env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = dynamodb_endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    env["AWS_REGION"] = region
    env["AWS_DEFAULT_REGION"] = region
    env.setdefault("AWS_LAMBDA_FUNCTION_NAME", "userstatus-local")
    if embedded or not env.get("AWS_ACCESS_KEY_ID"):
        env.update(DUMMY_CREDENTIALS)
        env.pop("AWS_SESSION_TOKEN", None)
        env["AWS_EC2_METADATA_DISABLED"] = "true"
