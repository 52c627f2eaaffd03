"""The deployed stack's functions: their configurations, and variables changed in place.

Changing a variable with ``UpdateFunctionConfiguration`` is what a redeploy with another stage
setting would do to that function, without a second deployment.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from tests.e2e.wire import wait_until
from userstatus.routes import BROADCAST_HANDLER
from userstatus_local.deployed import DeployedStack


def functions_of(stack: DeployedStack, handlers: Collection[str]) -> list[dict[str, Any]]:
    """The configurations of the deployed functions serving ``handlers`` (one each)."""
    functions = stack.client("lambda").list_functions()["Functions"]
    found = [f for f in functions if f["Handler"] in handlers]
    assert sorted(f["Handler"] for f in found) == sorted(handlers)
    return found


def set_variables(stack: DeployedStack, handlers: Collection[str], **variables: str) -> None:
    """Set environment variables of the functions serving ``handlers``; wait until applied."""
    client = stack.client("lambda")
    for function in functions_of(stack, handlers):
        client.update_function_configuration(
            FunctionName=function["FunctionName"],
            Environment={"Variables": dict(function["Environment"]["Variables"], **variables)},
        )
    for function in functions_of(stack, handlers):
        wait_until(
            lambda name=function["FunctionName"]: (
                client.get_function_configuration(FunctionName=name).get(
                    "LastUpdateStatus", "Successful"
                )
                == "Successful"
            )
        )


@contextmanager
def chunks_of(stack: DeployedStack, size: int) -> Iterator[None]:
    """The broadcaster splits every site of more than ``size`` connections (the stage's
    ``fanout_chunk_connections``) while the block runs; the deployed value after."""
    [broadcaster] = functions_of(stack, [BROADCAST_HANDLER])
    deployed = broadcaster["Environment"]["Variables"]["FANOUT_CHUNK_CONNECTIONS"]
    set_variables(stack, [BROADCAST_HANDLER], FANOUT_CHUNK_CONNECTIONS=str(size))
    try:
        yield
    finally:
        set_variables(stack, [BROADCAST_HANDLER], FANOUT_CHUNK_CONNECTIONS=deployed)
