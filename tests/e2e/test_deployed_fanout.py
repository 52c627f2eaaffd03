"""A big site's broadcast split across the fan-out function, on the stack deployed into
ministack (IAM enforced): the broadcaster invokes the real function with its own role, and the
function posts with its own. The relay runs no fan-out function (docs/relay.md)."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from typing import Any

from tests.e2e.deployed_functions import chunks_of, functions_of
from tests.e2e.targets import Target
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

VIEWERS = 3
MESSAGES = 3


def test_each_viewer_of_a_split_site_gets_every_message_once_in_order(
    deployed_stack: DeployedStack,
) -> None:
    target = Target.deployed(deployed_stack)
    site = "fan-" + uuid.uuid4().hex[:10]
    texts = [f"chunked {n}" for n in range(MESSAGES)]

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

    [fanout] = functions_of(deployed_stack, [FANOUT_HANDLER])
    invoked_before = len(fanout_invocations(deployed_stack, fanout["FunctionArn"]))
    with chunks_of(deployed_stack, 1):
        received = asyncio.run(scenario())
    assert received == [texts] * VIEWERS
    # And the two further chunks of each message were posted by the fan-out function, which
    # the broadcaster's role may invoke (ministack checks it with AUTH on)
    invocations = fanout_invocations(deployed_stack, fanout["FunctionArn"])[invoked_before:]
    assert len(invocations) >= MESSAGES * (VIEWERS - 1)
    assert all(check["allowed"] for check in invocations)


def fanout_invocations(stack: DeployedStack, fanout_arn: str) -> list[dict[str, Any]]:
    """The IAM checks of the broadcaster's calls that invoked the fan-out function."""
    return [
        check
        for check in stack.iam_checks()
        if check["action"] == "lambda:InvokeFunction"
        and check["resource"] == fanout_arn
        and "BroadcastHand" in check["principal"]
    ]
