"""A big site's broadcast split across the fan-out function, on both targets.

Chunks of one connection, so a site of three viewers is split: the broadcaster posts to one
and invokes the fan-out function for each of the others. On the stack deployed into ministack
(IAM enforced) the broadcaster invokes the real function with its own role; the relay serves
Lambda's Invoke API for it (``userstatus_local.lambda_invoke``) and checks the signature.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.deployed_functions import chunks_of, functions_of
from tests.e2e.targets import DEPLOYED, RELAY, TARGETS, Target
from tests.e2e.wire import (
    await_until,
    connection_ids,
    expect_silence,
    post_message,
    receive_n,
    subscribe,
)
from userstatus.routes import FANOUT_HANDLER
from userstatus_local.deployed import DeployedStack
from userstatus_local.process import RelayProcess

VIEWERS = 3
MESSAGES = 3


@dataclass
class SplitTarget:
    """A target whose broadcaster splits every site of more than one connection, and a count
    of the fan-out invocations it has made so far."""

    target: Target
    fanout_invocations: Callable[[], int]


@pytest.fixture(scope="module", params=TARGETS)
def split(request: pytest.FixtureRequest) -> Iterator[SplitTarget]:
    if request.param == RELAY:
        with RelayProcess.start("--fanout-chunk-connections", "1") as relay:
            yield SplitTarget(Target.relay(relay), lambda: relay_chunks(relay))
        return
    assert request.param == DEPLOYED
    stack: DeployedStack = request.getfixturevalue("deployed_stack")
    [fanout] = functions_of(stack, [FANOUT_HANDLER])
    with chunks_of(stack, 1):
        yield SplitTarget(
            Target.deployed(stack), lambda: len(deployed_invocations(stack, fanout["FunctionArn"]))
        )


def relay_chunks(relay: RelayProcess) -> int:
    """Chunks the relay's fan-out function has posted (its ``chunk done`` log lines)."""
    return sum(record.get("message") == "chunk done" for record in relay.log_records())


def deployed_invocations(stack: DeployedStack, fanout_arn: str) -> list[dict[str, Any]]:
    """The IAM checks of the broadcaster's calls that invoked the fan-out function (allowed or
    not: each is asserted allowed)."""
    checks = [
        check
        for check in stack.iam_checks()
        if check["action"] == "lambda:InvokeFunction"
        and check["resource"] == fanout_arn
        and "BroadcastHand" in check["principal"]
    ]
    assert all(check["allowed"] for check in checks), checks
    return checks


def test_each_viewer_of_a_split_site_gets_every_message_once_in_order(split: SplitTarget) -> None:
    target = split.target
    site = "fan-" + uuid.uuid4().hex[:10]
    texts = [f"chunked {n}" for n in range(MESSAGES)]
    invoked_before = split.fanout_invocations()

    async def scenario() -> list[list[str]]:
        async with AsyncExitStack() as stack:
            viewers = [
                await stack.enter_async_context(subscribe(target, site)) for _ in range(VIEWERS)
            ]
            await await_until(
                lambda: asyncio.to_thread(lambda: len(connection_ids(target, site)) == VIEWERS)
            )
            # Given chunks of one connection: the broadcaster posts to one viewer and invokes
            # the fan-out function for each of the two others, for every message
            for text in texts:
                answer = await asyncio.to_thread(post_message, target, site=site, log_message=text)
                assert answer.status == 200, answer.text
            received = [
                [frame["message"] for frame in await receive_n(viewer, MESSAGES)]
                for viewer in viewers
            ]
            for viewer in viewers:
                await expect_silence(viewer, 1.0)
            return received

    received = asyncio.run(scenario())
    # Then every viewer got every message once, in order
    assert received == [texts] * VIEWERS
    # And the two further chunks of each message went through the fan-out function
    assert split.fanout_invocations() - invoked_before >= MESSAGES * (VIEWERS - 1)
