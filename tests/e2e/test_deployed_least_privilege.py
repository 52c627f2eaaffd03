"""Least privilege, on the stack deployed into ministack with IAM enforced.

- Sufficient: every flow of the contract suite passes with enforcement on, and no call a
  function makes is denied (``test_every_grant_is_used_or_explained`` checks the record).
- Necessary: each role is refused what it must not do, with its own credentials (assumed from
  the deployed role, whose policies are exactly the synthesized ones).
- Nothing unused: ministack records every IAM check (action, resource, principal) through
  ``userstatus_local/ministack_launcher.py``; each (action, resource) a role is granted must be
  matched by a call its function made, unless docs/testing.md's table "Grants no handler call
  uses" says why the role needs it.
- Signed fan-out: the broadcaster's own client posts over TLS with SigV4 and is accepted; the
  same post signed with a wrong secret key is refused.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.e2e.deployed_functions import chunks_of
from tests.e2e.targets import Target
from tests.e2e.wire import (
    add_stale_connection,
    await_until,
    connection_ids,
    http,
    online_users,
    receive_json,
    recent_logs,
    subscribe,
)
from userstatus.management_api import ConnectionPoster
from userstatus.publish_keys import KeyStore
from userstatus.routes import BROADCAST_HANDLER, FANOUT_HANDLER, HTTP_HANDLER, WEBSOCKET_HANDLER
from userstatus_local.deployed import DeployedStack

TESTING_DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
TEST_SESSION = "least-privilege-test"
EXEMPTIONS_HEADING = "### Grants no handler call uses"
HANDLER_NAMES = {
    HTTP_HANDLER: "http_api",
    WEBSOCKET_HANDLER: "websocket_api",
    BROADCAST_HANDLER: "broadcast",
    FANOUT_HANDLER: "fanout",
}


@dataclass(frozen=True)
class Role:
    """A deployed function's role: its ARN, its policy statements and its own credentials."""

    arn: str
    grants: list[tuple[str, str]]
    credentials: Credentials

    @property
    def name(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    def client(self, stack: DeployedStack, service: str) -> Any:
        return stack.client(
            service,
            access_key=self.credentials.access_key,
            secret_key=self.credentials.secret_key,
            token=self.credentials.token or "",
        )


@pytest.fixture(scope="module")
def roles(deployed_stack: DeployedStack) -> dict[str, Role]:
    """Each handler's role, read from the deployed functions and IAM."""
    iam = deployed_stack.client("iam")
    sts = deployed_stack.client("sts")
    found = {}
    for function in deployed_stack.client("lambda").list_functions()["Functions"]:
        role_arn = function["Role"]
        role_name = role_arn.rsplit("/", 1)[-1]
        assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
        grants = []
        for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)
            for statement in document["PolicyDocument"]["Statement"]:
                assert statement["Effect"] == "Allow"
                for action in _as_list(statement["Action"]):
                    grants.extend(
                        (action, resource) for resource in _as_list(statement["Resource"])
                    )
        assumed = sts.assume_role(RoleArn=role_arn, RoleSessionName=TEST_SESSION)
        keys = assumed["Credentials"]
        credentials = Credentials(
            keys["AccessKeyId"], keys["SecretAccessKey"], keys["SessionToken"]
        )
        found[function["Handler"]] = Role(role_arn, grants, credentials)
    assert set(found) == set(HANDLER_NAMES)
    return found


def function_calls(stack: DeployedStack, role: Role) -> list[dict[str, Any]]:
    """The IAM checks of calls the deployed function made (not this module's own sessions)."""
    return [
        check
        for check in stack.iam_checks()
        if f":assumed-role/{role.name}/" in check["principal"]
        and not check["principal"].endswith(f"/{TEST_SESSION}")
    ]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _denied_code(call: Callable[[], Any]) -> str:
    try:
        call()
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return "allowed"


def _post_to_connection(stack: DeployedStack, credentials: Credentials) -> int:
    """A signed POST to an unknown connection: 403 if refused, 410 if allowed (no such id)."""
    target = Target.deployed(stack)
    target = Target(**{**target.__dict__, "credentials": credentials})
    url = target.management_url("NoSuchConnId00=")
    return http(target, "POST", url, b"{}", target.signed_headers("POST", url, b"{}")).status


def _item(site: str) -> dict[str, Any]:
    return {"site": {"S": site}, "id": {"S": "0#x"}, "connection_id": {"S": "x="}}


FORBIDDEN = {
    # The HTTP function reads and stores messages; it never talks to WebSocket clients and
    # never changes the connections table.
    "http_api posts to @connections": (HTTP_HANDLER, "post_to_connection", None),
    "http_api writes a connection": (HTTP_HANDLER, "PutItem", "connections"),
    "http_api deletes a connection": (HTTP_HANDLER, "DeleteItem", "connections"),
    # The WebSocket function stores messages and its own connections; it reads no history.
    "websocket_api posts to @connections": (WEBSOCKET_HANDLER, "post_to_connection", None),
    "websocket_api reads messages": (WEBSOCKET_HANDLER, "Query", "messages"),
    # The broadcaster reads the stream and connections; it never writes messages.
    "broadcast writes a message": (BROADCAST_HANDLER, "PutItem", "messages"),
    "broadcast writes a connection": (BROADCAST_HANDLER, "PutItem", "connections"),
    # Functions read publish keys; none can make one, or list a site's keys.
    "http_api writes a publish key": (HTTP_HANDLER, "PutItem", "publish_keys"),
    "websocket_api writes a publish key": (WEBSOCKET_HANDLER, "PutItem", "publish_keys"),
    "http_api lists publish keys": (HTTP_HANDLER, "Query", "publish_keys"),
    "broadcast reads a publish key": (BROADCAST_HANDLER, "GetItem", "publish_keys"),
    # No function deletes a table.
    "http_api deletes the messages table": (HTTP_HANDLER, "DeleteTable", "messages"),
    "websocket_api deletes the connections table": (
        WEBSOCKET_HANDLER,
        "DeleteTable",
        "connections",
    ),
    "broadcast deletes the messages table": (BROADCAST_HANDLER, "DeleteTable", "messages"),
}


@pytest.mark.parametrize("case", sorted(FORBIDDEN))
def test_each_role_is_denied_what_it_must_not_do(
    case: str, deployed_stack: DeployedStack, roles: dict[str, Role]
) -> None:
    handler, operation, table = FORBIDDEN[case]
    role = roles[handler]
    if operation == "post_to_connection":
        # The same call with the broadcaster's role reaches the API (410: no such connection).
        assert _post_to_connection(deployed_stack, roles[BROADCAST_HANDLER].credentials) == 410
        assert _post_to_connection(deployed_stack, role.credentials) == 403
        return
    table_name = {
        "messages": deployed_stack.messages_table,
        "connections": deployed_stack.connections_table,
        "publish_keys": deployed_stack.publish_keys_table,
    }[table or ""]
    dynamodb = role.client(deployed_stack, "dynamodb")
    calls: dict[str, Callable[[], Any]] = {
        "PutItem": lambda: dynamodb.put_item(TableName=table_name, Item=_item("forbidden")),
        "DeleteItem": lambda: dynamodb.delete_item(
            TableName=table_name,
            Key={"site": {"S": "forbidden"}, "connection_id": {"S": "x="}},
        ),
        "Query": lambda: dynamodb.query(
            TableName=table_name,
            KeyConditionExpression="site = :site",
            ExpressionAttributeValues={":site": {"S": "forbidden"}},
        ),
        "GetItem": lambda: dynamodb.get_item(
            TableName=table_name, Key={"site": {"S": "forbidden"}, "key_id": {"S": "0" * 12}}
        ),
        "DeleteTable": lambda: dynamodb.delete_table(TableName=table_name),
    }
    assert _denied_code(calls[operation]) == "AccessDeniedException"
    assert table_name in deployed_stack.client("dynamodb").list_tables()["TableNames"]


def exercise_every_flow(target: Target, site: str) -> None:
    """Each thing the stack does once: connect, post both ways with a publish key (the stack is
    deployed in audit mode: the key is read), broadcast (and drop a stale connection on 410),
    read history and the connection count, disconnect."""
    stale_id = "StaleLeastPriv0="
    add_stale_connection(target, site, stale_id)
    key = KeyStore(target.dynamodb(), target.publish_keys_table).create(site, now=time.time()).key

    async def scenario() -> None:
        async with subscribe(target, site) as connection:
            answer = await asyncio.to_thread(
                http,
                target,
                "POST",
                target.http_url + "/newlog",
                json.dumps({"site": site, "log_message": "over http"}).encode(),
                {"Authorization": f"Bearer {key}"},
            )
            assert answer.status == 200, answer.text
            assert (await receive_json(connection))["message"] == "over http"
            await connection.send(
                json.dumps({"action": "newlog", "site": site, "log_message": "over ws", "key": key})
            )
            assert (await receive_json(connection))["message"] == "over ws"
            assert await asyncio.to_thread(online_users, target, site) == 1
        await await_until(lambda: asyncio.to_thread(lambda: connection_ids(target, site) == []))

    asyncio.run(scenario())
    assert [entry["message"] for entry in recent_logs(target, site)] == ["over http", "over ws"]


def readme_exemptions() -> dict[tuple[str, str], str]:
    """(function, action) -> why, from docs/testing.md's table of grants no handler call uses."""
    text = TESTING_DOC.read_text()
    assert EXEMPTIONS_HEADING in text, f"docs/testing.md has no section {EXEMPTIONS_HEADING!r}"
    section = text.split(EXEMPTIONS_HEADING, 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| `([a-z0-9-]+:[A-Za-z]+)` \| (.+?) \|$", section, re.M)
    return {(function, action): why for function, action, why in rows}


def test_every_grant_is_used_or_explained(
    deployed_stack: DeployedStack, roles: dict[str, Role]
) -> None:
    # Given every flow exercised (besides whatever the rest of the suite did on this stack),
    # the broadcast split as for a big site: the site's two connections in chunks of one
    with chunks_of(deployed_stack, 1):
        exercise_every_flow(Target.deployed(deployed_stack), "lp-" + uuid.uuid4().hex[:10])
    time.sleep(1)  # the $disconnect invocation's last call is recorded after the row is gone
    exemptions = readme_exemptions()

    for handler, role in roles.items():
        function = HANDLER_NAMES[handler]
        calls = function_calls(deployed_stack, role)
        # Then no call of the function was refused (the grants are sufficient)
        assert [c for c in calls if not c["allowed"]] == [], function
        # And each grant is used by a call of the function, or docs/testing.md says why it is needed
        used = {(call["action"], call["resource"]) for call in calls}
        unused = sorted(
            (action, resource)
            for action, resource in role.grants
            if not any(
                used_action == action and fnmatch.fnmatchcase(used_resource, resource)
                for used_action, used_resource in used
            )
            and (function, action) not in exemptions
        )
        assert unused == [], f"{function} is granted what none of its calls used: {unused}"

    # And docs/testing.md explains only grants that exist
    granted = {(HANDLER_NAMES[h], action) for h, role in roles.items() for action, _ in role.grants}
    assert set(exemptions) <= granted, sorted(set(exemptions) - granted)


def test_broadcaster_posts_are_signed_and_a_wrong_secret_is_refused(
    deployed_stack: DeployedStack, roles: dict[str, Role], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = Target.deployed(deployed_stack)
    site = "sig-" + uuid.uuid4().hex[:10]
    # The broadcaster's client trusts the CA bundle of the process, as in Lambda.
    monkeypatch.setenv("SSL_CERT_FILE", str(deployed_stack.ca_path))
    right = roles[BROADCAST_HANDLER].credentials
    wrong = Credentials(right.access_key, "not-" + right.secret_key, right.token)

    async def scenario() -> tuple[Any, Any, Any]:
        async with subscribe(target, site) as connection:
            [connection_id] = await asyncio.to_thread(connection_ids, target, site)
            results = []
            for credentials in (right, wrong):
                poster = ConnectionPoster(
                    deployed_stack.management_endpoint,
                    region="us-east-1",
                    credentials=lambda c=credentials: c,
                )
                try:
                    results.append(
                        await asyncio.to_thread(poster.post_to_all, [connection_id], b'{"n": 1}')
                    )
                finally:
                    await asyncio.to_thread(poster.close)
            return results[0], results[1], await receive_json(connection)

    accepted, refused, frame = asyncio.run(scenario())
    assert (accepted.delivered, accepted.failed) == (1, [])
    assert frame == {"n": 1}
    assert refused.delivered == 0
    assert len(refused.failed) == 1
    # And the deployed broadcaster's own posts (the contract suite's broadcasts) were accepted
    exercise_every_flow(target, site)
    posts = [
        check
        for check in function_calls(deployed_stack, roles[BROADCAST_HANDLER])
        if check["action"] == "execute-api:ManageConnections"
        and "/POST/@connections/" in check["resource"]
    ]
    assert posts
    assert all(check["allowed"] for check in posts)
