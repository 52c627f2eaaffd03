"""Who may post, in each publish mode, on both targets: the relay and the deployed stack.

Keys are made with the operators' own command, ``userstatus-keys``: against the relay through
its DynamoDB endpoint and keys table, against the deployed stack by its stage name (the table
is read from the stack's outputs). The relay runs one process per mode; the deployed stack is
deployed once, in ``audit``, and switched by its functions' ``PUBLISH_AUTH`` variable (ministack
starts fresh workers after a configuration change, as Lambda does).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.deployed_functions import functions_of, set_variables
from tests.e2e.targets import DEPLOYED, RELAY, TARGETS, Target
from tests.e2e.wire import (
    post_message,
    receive_json,
    recent_logs,
    subscribe,
    wait_until,
)
from userstatus.routes import HTTP_HANDLER, WEBSOCKET_HANDLER
from userstatus_local.deployed import ACCOUNT, REGION, DeployedStack
from userstatus_local.process import RelayProcess

KEYS_COMMAND = Path(sys.executable).parent / "userstatus-keys"
POSTING_HANDLERS = (HTTP_HANDLER, WEBSOCKET_HANDLER)


@dataclass
class Publishing:
    """One target's posting side, switchable between the three modes."""

    kind: str
    stack: DeployedStack | None = None
    relays: dict[str, RelayProcess] = field(default_factory=dict)
    mode: str = "audit"

    def target(self, mode: str) -> Target:
        """The target, checking keys in ``mode``."""
        if self.stack is None:
            if mode not in self.relays:
                self.relays[mode] = RelayProcess.start("--publish-auth", mode)
            return Target.relay(self.relays[mode])
        if mode != self.mode:
            set_publish_auth(self.stack, mode)
            self.mode = mode
        return Target.deployed(self.stack)

    def keys(self, target: Target, *arguments: str) -> str:
        """``userstatus-keys ARGUMENTS`` for this target; its standard output."""
        if self.stack is None:
            relay = self._relay(target)
            where = [
                "--dynamodb-endpoint",
                relay.dynamodb_url,
                "--table",
                target.publish_keys_table,
            ]
            env = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
        else:
            where = ["--stage", self.stack.stage]
            env = {
                "AWS_ENDPOINT_URL": self.stack.gateway,
                "AWS_CA_BUNDLE": str(self.stack.ca_path),
                "AWS_ACCESS_KEY_ID": ACCOUNT,
                "AWS_SECRET_ACCESS_KEY": "test",
            }
        done = subprocess.run(  # noqa: S603 (the project's own command)
            [str(KEYS_COMMAND), *arguments, *where],
            env={**os.environ, "AWS_DEFAULT_REGION": REGION, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def new_key(self, target: Target, site: str) -> tuple[str, str]:
        """A new key of ``site`` (the last line ``create`` prints) and its id."""
        output = self.keys(target, "create", "--site", site)
        key_id = next(
            line.removeprefix("key id: ") for line in output.splitlines() if line.startswith("key")
        )
        return output.splitlines()[-1], key_id

    def unkeyed_posts(self, target: Target, site: str) -> int:
        """How many UnkeyedPosts the functions have counted for ``site`` (their EMF lines)."""
        if self.stack is None:
            lines = self._relay(target).stdout_path.read_text().splitlines()
        else:
            lines = function_log_lines(self.stack)
        return sum(
            entry["UnkeyedPosts"]
            for entry in (_json_object(line) for line in lines)
            if entry is not None and "_aws" in entry and entry.get("Site") == site
        )

    def _relay(self, target: Target) -> RelayProcess:
        """The relay process serving ``target``."""
        return next(r for r in self.relays.values() if r.http_url == target.http_url)

    def close(self) -> None:
        for relay in self.relays.values():
            relay.stop()
        if self.stack is not None and self.mode != "audit":
            set_publish_auth(self.stack, "audit")


@pytest.fixture(scope="module", params=TARGETS)
def publishing(request: pytest.FixtureRequest) -> Iterator[Publishing]:
    """Each target in turn, in whichever publish mode a test asks for."""
    if request.param == RELAY:
        switch = Publishing(RELAY)
    else:
        assert request.param == DEPLOYED
        switch = Publishing(DEPLOYED, stack=request.getfixturevalue("deployed_stack"))
    try:
        yield switch
    finally:
        switch.close()


def posting_functions(stack: DeployedStack) -> list[dict[str, Any]]:
    """The deployed HTTP and WebSocket functions' configurations."""
    return functions_of(stack, POSTING_HANDLERS)


def set_publish_auth(stack: DeployedStack, mode: str) -> None:
    """Set PUBLISH_AUTH on the posting functions, as a redeploy with another mode would."""
    set_variables(stack, POSTING_HANDLERS, PUBLISH_AUTH=mode)


def function_log_lines(stack: DeployedStack) -> list[str]:
    """Every line the posting functions have logged so far (CloudWatch Logs)."""
    logs = stack.client("logs")
    lines: list[str] = []
    for function in posting_functions(stack):
        group = function["LoggingConfig"]["LogGroup"]
        paginator = logs.get_paginator("filter_log_events")
        for page in paginator.paginate(logGroupName=group):
            lines += [event["message"] for event in page["events"]]
    return lines


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def post(target: Target, site: str, text: str, key: str | None = None) -> tuple[int, Any, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else None
    answer = post_message(target, extra_headers=headers, site=site, log_message=text)
    return answer.status, answer.json, {k.lower(): v for k, v in answer.headers.items()}


def frame_answer(target: Target, site: str, text: str, key: object = None) -> Any:
    """Send a newlog frame; the frame the sender receives next (its error, or the broadcast)."""

    async def scenario() -> Any:
        async with subscribe(target, site) as connection:
            fields: dict[str, Any] = {"action": "newlog", "site": site, "log_message": text}
            if key is not None:
                fields["key"] = key
            await connection.send(json.dumps(fields))
            return await receive_json(connection)

    return asyncio.run(scenario())


def messages(target: Target, site: str) -> list[str]:
    return [entry["message"] for entry in recent_logs(target, site)]


def new_site() -> str:
    return "pk-" + uuid.uuid4().hex[:12]


def test_keys_mode_answers_401_to_a_post_without_a_key(publishing: Publishing) -> None:
    target, site = publishing.target("keys"), new_site()
    status, body, headers = post(target, site, "no key")
    assert (status, body["field"]) == (401, "Authorization"), body
    assert body["error"] == f"Authorization is required: 'Bearer <publish key>' of site '{site}'"
    assert headers.get("www-authenticate") == 'Bearer realm="userstatus"'
    frame = frame_answer(target, site, "no key over ws")
    assert (frame["status"], frame["field"], frame["log_level"]) == (401, "key", "error")
    assert messages(target, site) == []


def test_keys_mode_answers_403_to_another_sites_key(publishing: Publishing) -> None:
    target, site = publishing.target("keys"), new_site()
    other_key, _ = publishing.new_key(target, new_site())
    status, body, _ = post(target, site, "wrong site", other_key)
    assert (status, body) == (
        403,
        {"error": f"Authorization is not a key of site '{site}'", "field": "Authorization"},
    )
    frame = frame_answer(target, site, "wrong site over ws", other_key)
    assert (frame["status"], frame["error"]) == (403, f"key is not a key of site '{site}'")
    assert messages(target, site) == []


def test_keys_mode_answers_403_to_a_revoked_key(publishing: Publishing) -> None:
    target, site = publishing.target("keys"), new_site()
    key, key_id = publishing.new_key(target, site)
    assert "revoked key" in publishing.keys(target, "revoke", "--site", site, "--key-id", key_id)
    listed = publishing.keys(target, "list", "--site", site)
    assert key_id in listed
    assert key not in listed
    status, body, _ = post(target, site, "revoked", key)
    assert (status, body) == (403, {"error": "Authorization was revoked", "field": "Authorization"})
    frame = frame_answer(target, site, "revoked over ws", key)
    assert (frame["status"], frame["error"]) == (403, "key was revoked")
    assert messages(target, site) == []


def test_keys_mode_stores_and_broadcasts_a_post_with_a_valid_key(publishing: Publishing) -> None:
    target, site = publishing.target("keys"), new_site()
    key, _ = publishing.new_key(target, site)

    async def scenario() -> tuple[int, Any, Any]:
        async with subscribe(target, site) as connection:
            status, _, _ = await asyncio.to_thread(post, target, site, "over http", key)
            heard = await receive_json(connection)
            await connection.send(
                json.dumps({"action": "newlog", "site": site, "log_message": "over ws", "key": key})
            )
            return status, heard, await receive_json(connection)

    status, heard_http, heard_ws = asyncio.run(scenario())
    assert status == 200
    assert heard_http == {
        "site": site,
        "message": "over http",
        "log_level": "info",
        "timestamp": heard_http["timestamp"],
    }
    assert heard_ws["message"] == "over ws"
    assert "key" not in heard_ws
    assert messages(target, site) == ["over http", "over ws"]


def test_audit_mode_takes_an_unkeyed_post_and_counts_it(publishing: Publishing) -> None:
    target, site = publishing.target("audit"), new_site()
    key, _ = publishing.new_key(target, site)
    assert post(target, site, "unkeyed")[0] == 200
    assert post(target, site, "revoked or not, any key but a valid one", "usk_nope")[0] == 200
    assert post(target, site, "keyed", key)[0] == 200
    assert messages(target, site) == [
        "unkeyed",
        "revoked or not, any key but a valid one",
        "keyed",
    ]
    # The two posts without a valid key, each counted once (the line is written as it happens).
    wait_until(lambda: publishing.unkeyed_posts(target, site) >= 2)
    time.sleep(0.5)
    assert publishing.unkeyed_posts(target, site) == 2


def test_audit_mode_takes_an_unkeyed_frame_and_counts_it(publishing: Publishing) -> None:
    target, site = publishing.target("audit"), new_site()
    target.require("websocket_function_logs")
    assert frame_answer(target, site, "unkeyed over ws")["message"] == "unkeyed over ws"
    wait_until(lambda: publishing.unkeyed_posts(target, site) >= 1)
    time.sleep(0.5)
    assert publishing.unkeyed_posts(target, site) == 1


def test_open_mode_takes_posts_without_keys_and_counts_nothing(publishing: Publishing) -> None:
    target, site = publishing.target("open"), new_site()
    assert post(target, site, "open post")[0] == 200
    assert post(target, site, "junk key", "not-a-key")[0] == 200
    assert messages(target, site) == ["open post", "junk key"]
    assert publishing.unkeyed_posts(target, site) == 0


def test_the_client_sends_with_a_key(
    publishing: Publishing, monkeypatch: pytest.MonkeyPatch
) -> None:
    from userstatus_client import RelayRejectedError, UserStatusHandler, send

    target, site = publishing.target("keys"), new_site()
    key, _ = publishing.new_key(target, site)
    if target.ca_path is not None:
        # The client uses the default trust store, as on an observatory's machine.
        monkeypatch.setenv("SSL_CERT_FILE", str(target.ca_path))
    with pytest.raises(RelayRejectedError) as refused:
        send(site, "without", url=target.http_url)
    assert refused.value.status == 401
    stored = send(site, "with send()", url=target.http_url, key=key)
    assert stored.message == "with send()"
    monkeypatch.setenv("USERSTATUS_KEY", key)
    handler = UserStatusHandler(site, target.http_url)
    handler.handle(_record("with the handler"))
    handler.close()
    assert handler.stats().sent == 1
    assert messages(target, site) == ["with send()", "with the handler"]


def _record(text: str) -> Any:
    import logging

    return logging.LogRecord("observatory", logging.INFO, __file__, 1, text, None, None)
