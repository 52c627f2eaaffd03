"""Starting and stopping the relay as a newcomer would: Ctrl-C, and another DynamoDB."""

from __future__ import annotations

import asyncio
import uuid

from websockets.exceptions import ConnectionClosed

from tests.e2e.targets import Target
from tests.e2e.wire import TIMEOUT, apost, receive_json, subscribe
from userstatus_local.process import RelayProcess


def test_ctrl_c_closes_websockets_and_exits_cleanly() -> None:
    relay = RelayProcess.start()
    try:
        banner = relay.stdout_path.read_text()
        assert f"curl -s -X POST {relay.http_url}/newlog" in banner
        assert f"{relay.ws_url}/?site=tst" in banner

        async def scenario() -> int | None:
            async with subscribe(Target.relay(relay), "ctrlc") as connection:
                relay.process.send_signal(2)  # SIGINT, as Ctrl-C sends
                try:
                    await asyncio.wait_for(connection.recv(), TIMEOUT)
                except ConnectionClosed as closed:
                    return closed.rcvd.code if closed.rcvd else None
            return None

        close_code = asyncio.run(scenario())
        relay.process.wait(TIMEOUT)
        stderr = relay.stderr_tail(200)
    finally:
        exit_status = relay.stop()
    assert close_code == 1001
    assert exit_status == 0
    assert '"message": "stopped"' in stderr
    assert "Traceback" not in stderr


def test_dynamodb_endpoint_points_the_relay_at_another_dynamodb(relay: RelayProcess) -> None:
    # Given another DynamoDB (here the session relay's embedded one) and table names it lacks
    suffix = uuid.uuid4().hex[:8]
    messages, connections = f"msgs-{suffix}", f"conns-{suffix}"
    with RelayProcess.start(
        "--dynamodb-endpoint",
        relay.dynamodb_url,
        "--messages-table",
        messages,
        "--connections-table",
        connections,
    ) as second:
        # Then it creates the tables there (messages with a stream) and works end to end
        tables = Target.relay(relay).dynamodb().list_tables()["TableNames"]
        assert {messages, connections} <= set(tables)
        assert second.dynamodb_url == relay.dynamodb_url

        async def scenario() -> None:
            async with subscribe(Target.relay(second), "elsewhere") as connection:
                await apost(
                    Target.relay(second), site="elsewhere", log_message="through the other db"
                )
                assert (await receive_json(connection))["message"] == "through the other db"

        asyncio.run(scenario())
    stored = Target.relay(relay).dynamodb().scan(TableName=messages)["Items"]
    assert [item["message"]["S"] for item in stored] == ["through the other db"]
