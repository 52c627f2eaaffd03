"""Where the contract suite runs: the local relay, or the real stack deployed into ministack.

A ``Target`` is everything a test needs to reach one running system: its HTTP and WebSocket
URLs, the management API (every call SigV4-signed, as ministack with IAM enforced requires),
the connections table, the TLS context that trusts its certificate, and what it cannot do.

``Target.require(gap)`` skips a test on a target with that gap, with the reason as the skip
message. The gaps are limitations of the emulator or of the relay, each listed in docs/testing.md
(section "One contract suite, two targets").
"""

from __future__ import annotations

import dataclasses
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from userstatus_local.deployed import DeployedStack
from userstatus_local.options import LOCAL_STAGE
from userstatus_local.process import RelayProcess

RELAY = "relay"
DEPLOYED = "deployed"
TARGETS = (RELAY, DEPLOYED)

# What ministack 1.5.33 does differently from API Gateway, as seen by the contract suite.
MINISTACK_GAPS: Mapping[str, str] = {
    "connect_rejection_status": (
        "ministack answers 403 to every $connect its function rejects, not the function's own "
        "400 and body (AWS documents only that the connection is not made)"
    ),
    "websocket_frame_limits": (
        "ministack does not close connections whose frames pass API Gateway's 32 KB frame "
        "and 128 KB message limits"
    ),
    "management_post_limit": (
        "ministack accepts @connections posts over API Gateway's 128 KB limit"
    ),
    "connection_id_shape": (
        "ministack's connection ids are 16 hex digits, not API Gateway's base64 form"
    ),
    "connection_info_identity": (
        "ministack's GET @connections answers no Identity (SourceIp, UserAgent) and gives "
        "ConnectedAt as an integer"
    ),
    "root_signature_unchecked": (
        "ministack accepts any signature made with the account's root key id (it checks those "
        "of the functions' roles: see test_deployed_least_privilege.py)"
    ),
    "websocket_function_logs": (
        "ministack writes no CloudWatch Logs for functions invoked by WebSocket routes (it does "
        "for the HTTP API's and the event source mapping's)"
    ),
    "plain_http_on_websocket_port": (
        "ministack serves every API on one port, so there is no WebSocket-only port to probe"
    ),
}
RELAY_GAPS: Mapping[str, str] = {}


@dataclass(frozen=True)
class Target:
    """One running system the contract suite can talk to."""

    name: str
    http_url: str
    websocket_base: str
    management_endpoint: str
    connections_table: str
    messages_table: str
    publish_keys_table: str
    region: str
    credentials: Credentials
    ssl_context: ssl.SSLContext | None
    ca_path: Path | None
    dynamodb_options: Mapping[str, Any]
    gaps: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def relay(cls, relay: RelayProcess) -> Target:
        """The local relay (plain HTTP, unsigned DynamoDB on its embedded moto)."""
        management = relay.ws_url.replace("ws://", "http://") + f"/{LOCAL_STAGE}"
        return cls(
            name=RELAY,
            http_url=relay.http_url,
            websocket_base=relay.ws_url + "/",
            management_endpoint=management,
            connections_table=relay.connections_table,
            messages_table=relay.messages_table,
            publish_keys_table=relay.publish_keys_table,
            region="us-east-1",
            credentials=Credentials("local", "local"),
            ssl_context=None,
            ca_path=None,
            dynamodb_options={"endpoint_url": relay.dynamodb_url},
            gaps=RELAY_GAPS,
        )

    @classmethod
    def deployed(cls, stack: DeployedStack) -> Target:
        """The stack deployed into ministack (TLS, IAM enforced; the account's root calls)."""
        return cls(
            name=DEPLOYED,
            http_url=stack.http_url,
            websocket_base=stack.ws_url,
            management_endpoint=stack.management_endpoint,
            connections_table=stack.connections_table,
            messages_table=stack.messages_table,
            publish_keys_table=stack.publish_keys_table,
            region="us-east-1",
            credentials=Credentials("000000000000", "test"),
            ssl_context=stack.ssl_context(),
            ca_path=stack.ca_path,
            dynamodb_options={"endpoint_url": stack.gateway, "verify": str(stack.ca_path)},
            gaps=MINISTACK_GAPS,
        )

    def with_credentials(self, credentials: Credentials) -> Target:
        """This target, signing with other credentials."""
        return dataclasses.replace(self, credentials=credentials)

    def require(self, gap: str) -> None:
        """Skip the calling test here if this target has ``gap``, with the reason."""
        assert gap in MINISTACK_GAPS or gap in RELAY_GAPS, f"unknown gap {gap!r}"
        if gap in self.gaps:
            pytest.skip(f"{self.name}: {self.gaps[gap]}")

    def websocket_url(self, query: str = "") -> str:
        """The URL a client connects to, with ``query`` (``?site=...``) appended."""
        return self.websocket_base + query

    def management_url(self, connection_id: str) -> str:
        """``POST|GET|DELETE`` URL of one connection in the management API."""
        return (
            f"{self.management_endpoint}/@connections/{urllib.parse.quote(connection_id, safe='')}"
        )

    def signed_headers(self, method: str, url: str, body: bytes | None) -> dict[str, str]:
        """SigV4 headers (service ``execute-api``) for a management API request."""
        request = AWSRequest(method=method, url=url, data=body or b"")
        SigV4Auth(self.credentials, "execute-api", self.region).add_auth(request)
        return dict(request.headers.items())

    def dynamodb(self) -> Any:
        """A boto3 DynamoDB client of this target's tables."""
        return boto3.client(
            "dynamodb",
            region_name=self.region,
            aws_access_key_id=self.credentials.access_key,
            aws_secret_access_key=self.credentials.secret_key,
            **self.dynamodb_options,
        )
