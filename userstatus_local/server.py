"""The running relay: tables, handlers, both aiohttp servers and the event source child (the
stream poller and the broadcast handler), started by ``userstatus_local.startup`` once the
handlers' environment is set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import signal
import socket
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from aiohttp import web

from userstatus import fanout, http_api, websocket_api
from userstatus.logs import configure_logging
from userstatus.runtime import runtime
from userstatus_local.dynamodb import CLIENT_CONFIG, ensure_tables
from userstatus_local.event_source import EventSourceProcess, EventSourceStartError
from userstatus_local.http_server import HttpRelay
from userstatus_local.invoke import Invoker
from userstatus_local.lambda_invoke import LAMBDA_SERVICE, LambdaInvokeApi
from userstatus_local.management_auth import ManagementAuth
from userstatus_local.options import RelayAddresses, RelayOptions
from userstatus_local.websocket_server import WebSocketRelay
from userstatus_stack.stages import STAGES

logger = logging.getLogger("userstatus_local")

# Concurrent invocations per function, as each Lambda function has its own concurrency: a
# backlog of one (a flood of $disconnect) never queues the other's requests. Kept small: the
# handlers share this process's GIL with the servers, so more threads add no throughput, only
# latency per call (past the SDK's read timeout under a flood) and more connections than the
# handlers' boto3 pool keeps (10).
HTTP_HANDLER_THREADS = 4
WEBSOCKET_HANDLER_THREADS = 4
DISCONNECT_HANDLER_THREADS = 2
# Fan-out invocations at once: a broadcast invokes up to 32 (userstatus.chunk_invoker), but
# they share this process's GIL and the one poster of its runtime, so more threads add nothing.
FANOUT_HANDLER_THREADS = 4
SHUTDOWN_SECONDS = 5.0


async def serve(
    options: RelayOptions,
    addresses: RelayAddresses,
    http_socket: socket.socket,
    ws_socket: socket.socket,
) -> int:
    """Serve until SIGINT or SIGTERM, then stop cleanly; the exit status (1 if the event source
    ended on its own)."""
    configure_logging()
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    stop = asyncio.Event()
    exit_status = 0
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    dynamodb = boto3.client("dynamodb", config=CLIENT_CONFIG)
    stream_arn = await asyncio.to_thread(
        ensure_tables,
        dynamodb,
        options.messages_table,
        options.connections_table,
        options.publish_keys_table,
    )
    # Build the handlers' per-process state once, here, rather than racing in worker threads.
    await asyncio.to_thread(runtime)
    options.faults.install_dynamodb_throttling(runtime().messages._client)
    # A failure queue of the run's own unless one is given (removed at the end, with its dir).
    run_dir: Path | None = None
    if options.failure_queue is not None:
        failure_queue = options.failure_queue
    else:
        run_dir = Path(tempfile.mkdtemp(prefix="userstatus-relay-"))
        failure_queue = run_dir / "failure-queue.jsonl"
    failure_queue.touch()

    http_executor = ThreadPoolExecutor(HTTP_HANDLER_THREADS, thread_name_prefix="lambda-http")
    websocket_executor = ThreadPoolExecutor(
        WEBSOCKET_HANDLER_THREADS, thread_name_prefix="lambda-websocket"
    )
    disconnect_executor = ThreadPoolExecutor(
        DISCONNECT_HANDLER_THREADS, thread_name_prefix="lambda-disconnect"
    )
    fanout_executor = ThreadPoolExecutor(FANOUT_HANDLER_THREADS, thread_name_prefix="lambda-fanout")
    # The functions as the stage deploys them: the same settings the stack reads.
    stage = STAGES[options.stage]
    api_function = {"timeout_seconds": stage.api_timeout_seconds, "memory_mb": stage.api_memory_mb}
    logger.info(
        "functions as deployed",
        extra={
            "stage": stage.stage,
            "api_timeout_seconds": stage.api_timeout_seconds,
            "api_memory_mb": stage.api_memory_mb,
            "broadcast_timeout_seconds": stage.broadcast_timeout_seconds,
            "broadcast_memory_mb": stage.broadcast_memory_mb,
            "fanout_memory_mb": stage.fanout_memory_mb,
            "broadcast_batch_size": stage.broadcast_batch_size,
            "broadcast_retry_attempts": stage.broadcast_retry_attempts,
        },
    )
    event_source = EventSourceProcess(
        stream_arn,
        stage=stage.stage,
        failure_queue=failure_queue,
        throttle_dynamodb=options.faults.throttle_dynamodb,
    )
    websockets = WebSocketRelay(
        websocket_api.handler,
        Invoker(websocket_executor, **api_function),
        on_stored=event_source.wake,
        disconnect_invoker=Invoker(disconnect_executor, **api_function),
        auth=ManagementAuth.from_environ(os.environ),
        idle_timeout=options.idle_timeout,
        max_connection_seconds=options.max_connection_seconds,
        faults=options.faults,
    )
    http = HttpRelay(
        http_api.handler,
        Invoker(http_executor, **api_function),
        websocket_port=ws_socket.getsockname()[1],
        on_stored=event_source.wake,
    )
    # The fan-out function gets the broadcaster's timeout, as the stack gives it.
    fanout_api = LambdaInvokeApi(
        fanout.handler,
        Invoker(
            fanout_executor,
            timeout_seconds=stage.broadcast_timeout_seconds,
            memory_mb=stage.fanout_memory_mb,
        ),
        auth=ManagementAuth.from_environ(os.environ, service=LAMBDA_SERVICE),
    )
    ws_application = websockets.application()
    fanout_api.add_routes(ws_application)
    ws_runner = web.AppRunner(ws_application, access_log=None)
    http_runner = web.AppRunner(http.application(), access_log=None)
    try:
        for runner, sock in ((ws_runner, ws_socket), (http_runner, http_socket)):
            await runner.setup()
            await web.SockSite(runner, sock, shutdown_timeout=SHUTDOWN_SECONDS).start()
        try:
            await asyncio.to_thread(event_source.start)
        except EventSourceStartError as error:
            logger.error("%s; stopping the relay", error)
            return 1
        event_source_exit = asyncio.ensure_future(asyncio.to_thread(event_source.wait))
        event_source_exit.add_done_callback(lambda _: stop.set())
        print_banner(addresses, failure_queue)
        await stop.wait()
        if event_source_exit.done():
            logger.error(
                "the event source process exited with status %s; stopping the relay",
                event_source_exit.result(),
            )
            exit_status = 1
        logger.info("stopping")
    finally:
        await asyncio.to_thread(event_source.stop)
        await websockets.close_all()
        await ws_runner.cleanup()
        await http_runner.cleanup()
        for executor in (http_executor, websocket_executor, disconnect_executor, fanout_executor):
            executor.shutdown(wait=True, cancel_futures=True)
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        logger.info("stopped")
    return exit_status


_POSTING = {
    "open": "open to anyone (--publish-auth audit|keys to check publish keys)",
    "audit": "open; posts without a valid publish key are logged and counted",
    "keys": "needs a publish key of the site (userstatus-keys create --site S ...)",
}


def print_banner(addresses: RelayAddresses, failure_queue: Path) -> None:
    """The URLs, two ready-to-paste examples and the READY line, on stdout."""
    body = '{"site": "tst", "log_message": "hello from curl", "log_level": "info"}'
    curl = (
        f"curl -s -X POST {addresses.http_url}/newlog "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )
    dynamodb = "embedded moto" if addresses.embedded_dynamodb else "external"
    lines = [
        "userstatus local relay",
        f"  HTTP API    {addresses.http_url}  (POST /newlog, GET /recent-logs, GET /onlineusers)",
        f"  WebSocket   {addresses.ws_url}/?site=tst",
        f"  Viewer      {addresses.http_url}/?site=tst",
        f"  Management  {addresses.management_endpoint}/@connections/{{id}}",
        f"  DynamoDB    {addresses.dynamodb_url}  ({dynamodb})",
        f"  Posting     {_POSTING[runtime().settings.publish_auth]}",
        f"  Failures    {failure_queue}  (stream batches given up on)",
        "",
        "Subscribe (in one terminal):",
        f"  python -m websockets '{addresses.ws_url}/?site=tst'",
        "Post (in another):",
        f"  {curl}",
        "",
        "Ctrl-C stops the relay.",
        f"READY http={addresses.http_url} ws={addresses.ws_url} "
        f"dynamodb={addresses.dynamodb_url} "
        f"messages_table={runtime().settings.messages_table} "
        f"connections_table={runtime().settings.connections_table} "
        f"keys_table={runtime().settings.publish_keys_table} "
        f"publish_auth={runtime().settings.publish_auth} "
        f"failure_queue={failure_queue}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
