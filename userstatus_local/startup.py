"""Start-up and shutdown of the relay, in the order the handlers need.

1. Bind both listening sockets (port 0 picks a free port) so the real ports are known.
2. Start the embedded DynamoDB (unless ``--dynamodb-endpoint`` is given).
3. Set the handlers' environment (``userstatus_local.environment``), which they read when they
   first run (``userstatus.runtime``), as in AWS.
4. Serve (``userstatus_local.server``) until SIGINT or SIGTERM, then stop in reverse order.

On start it prints the URLs, ready-to-paste examples and a machine-readable line::

    READY http=http://127.0.0.1:3000 ws=ws://127.0.0.1:3001 dynamodb=http://127.0.0.1:PORT ...
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

from userstatus_local.dynamodb import EmbeddedDynamoDB
from userstatus_local.environment import configure_environment
from userstatus_local.lambda_invoke import FANOUT_FUNCTION_NAME
from userstatus_local.options import (
    LOCAL_STAGE,
    RelayAddresses,
    RelayOptions,
    connect_host,
    url_host,
)
from userstatus_local.server import serve
from userstatus_stack.stages import STAGES


def run(options: RelayOptions) -> int:
    """Run the relay until SIGINT or SIGTERM; the exit status."""
    if options.stage not in STAGES:
        sys.stderr.write(
            f"userstatus_local: unknown stage {options.stage!r}: "
            f"use --stage <{'|'.join(sorted(STAGES))}>\n"
        )
        return 2
    try:
        http_socket = listening_socket(options.host, options.http_port)
    except OSError as error:
        return _cannot_listen(options.host, options.http_port, "--http-port", error)
    try:
        ws_socket = listening_socket(options.host, options.ws_port)
    except OSError as error:
        http_socket.close()
        return _cannot_listen(options.host, options.ws_port, "--ws-port", error)
    embedded: EmbeddedDynamoDB | None = None
    host = url_host(connect_host(options.host))
    try:
        if options.dynamodb_endpoint:
            dynamodb_url = options.dynamodb_endpoint.rstrip("/")
        else:
            embedded = EmbeddedDynamoDB(connect_host(options.host), options.dynamodb_port)
            dynamodb_url = f"http://{host}:{embedded.start()}"
        ws_port = ws_socket.getsockname()[1]
        addresses = RelayAddresses(
            http_url=f"http://{host}:{http_socket.getsockname()[1]}",
            ws_url=f"ws://{host}:{ws_port}",
            dynamodb_url=dynamodb_url,
            management_endpoint=f"http://{host}:{ws_port}/{LOCAL_STAGE}",
            embedded_dynamodb=embedded is not None,
        )
        configure_environment(
            dynamodb_endpoint=dynamodb_url,
            management_endpoint=addresses.management_endpoint,
            messages_table=options.messages_table,
            connections_table=options.connections_table,
            publish_keys_table=options.publish_keys_table,
            embedded=embedded is not None,
        )
        # The functions read these when they first run (userstatus.runtime), as in AWS.
        stage = STAGES[options.stage]
        os.environ["STAGE"] = options.stage
        os.environ["PUBLISH_AUTH"] = options.publish_auth or stage.publish_auth
        # The broadcaster invokes the fan-out function through the relay's Invoke API.
        os.environ["FANOUT_FUNCTION_NAME"] = FANOUT_FUNCTION_NAME
        os.environ["FANOUT_CHUNK_CONNECTIONS"] = str(
            options.fanout_chunk_connections or stage.fanout_chunk_connections
        )
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = f"http://{host}:{ws_port}"
        return asyncio.run(serve(options, addresses, http_socket, ws_socket))
    finally:
        http_socket.close()
        ws_socket.close()
        if embedded is not None:
            embedded.stop()


def _cannot_listen(host: str, port: int, flag: str, error: OSError) -> int:
    sys.stderr.write(
        f"userstatus_local: cannot listen on {url_host(host)}:{port}: "
        f"{error.strerror or error}; choose another port with {flag} (0 picks a free one)\n"
    )
    return 1


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: a free port), not yet listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
