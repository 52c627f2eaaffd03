"""The relay's DynamoDB: moto in server mode in this process, or any endpoint given.

Tables are created from the key definitions in ``userstatus.keys`` (the ones the stack uses),
with a NEW_IMAGE stream on the messages table for the broadcaster.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("userstatus_local.dynamodb")

MESSAGES_STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}


class EmbeddedDynamoDB:
    """moto's threaded server on ``host``; ``port`` 0 picks a free port."""

    def __init__(self, host: str, port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        # moto's werkzeug server logs every request; the relay's own logs are enough.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._host = host

    def start(self) -> str:
        """Start serving; return the endpoint URL."""
        self._server.start()
        host, port = self._server.get_host_and_port()
        return f"http://{_url_host(host)}:{port}"

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()


def ensure_tables(client: Any, messages_table: str, connections_table: str) -> str:
    """Create both tables if missing and make sure messages has a stream; return its ARN."""
    # Imported here: this module is used before the handlers' environment is set.
    from userstatus import keys

    _ensure_table(client, keys.CONNECTIONS.create_table_kwargs(connections_table))
    kwargs = keys.MESSAGES.create_table_kwargs(messages_table)
    kwargs["StreamSpecification"] = MESSAGES_STREAM
    description = _ensure_table(client, kwargs)
    stream = description.get("StreamSpecification") or {}
    if not stream.get("StreamEnabled"):
        logger.info("enabling the stream of %s", messages_table)
        description = client.update_table(
            TableName=messages_table, StreamSpecification=MESSAGES_STREAM
        )["TableDescription"]
    elif stream.get("StreamViewType") not in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        raise RuntimeError(
            f"table {messages_table} streams {stream.get('StreamViewType')}; the broadcaster "
            "needs NEW_IMAGE or NEW_AND_OLD_IMAGES"
        )
    arn = description.get("LatestStreamArn")
    if not arn:
        raise RuntimeError(f"table {messages_table} has no stream")
    return str(arn)


def _ensure_table(client: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    name = kwargs["TableName"]
    try:
        description: dict[str, Any] = client.describe_table(TableName=name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        logger.info("creating table %s", name)
        client.create_table(**kwargs)
        client.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        description = client.describe_table(TableName=name)["Table"]
    return description


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
