"""``python -m userstatus_local``: run the relay until Ctrl-C (see ``userstatus_local.startup``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from userstatus.config import MAX_CHUNK_CONNECTIONS, PUBLISH_AUTH_MODES
from userstatus_local.faults import Faults
from userstatus_local.options import RelayOptions
from userstatus_local.startup import run

DEFAULTS = RelayOptions()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ports 0 pick free ports."""
    parser = argparse.ArgumentParser(
        prog="python -m userstatus_local",
        description="Run the user status relay on this machine through the real Lambda handlers.",
    )
    parser.add_argument(
        "--host", default=DEFAULTS.host, help=f"address to listen on ({DEFAULTS.host})"
    )
    parser.add_argument(
        "--http-port", type=int, default=DEFAULTS.http_port, help="HTTP API port, 0: any free"
    )
    parser.add_argument(
        "--ws-port", type=int, default=DEFAULTS.ws_port, help="WebSocket port, 0: any free"
    )
    parser.add_argument(
        "--dynamodb-endpoint",
        metavar="URL",
        default=DEFAULTS.dynamodb_endpoint,
        help="use this DynamoDB (DynamoDB Local, AWS) instead of the embedded one",
    )
    parser.add_argument(
        "--dynamodb-port",
        type=int,
        default=DEFAULTS.dynamodb_port,
        help="embedded DynamoDB port",
    )
    parser.add_argument("--messages-table", default=DEFAULTS.messages_table)
    parser.add_argument("--connections-table", default=DEFAULTS.connections_table)
    parser.add_argument(
        "--idle-timeout",
        metavar="SECONDS",
        type=positive_seconds,
        default=DEFAULTS.idle_timeout,
        help="close a WebSocket after this long without a data frame, as API Gateway does "
        f"({DEFAULTS.idle_timeout:g})",
    )
    parser.add_argument(
        "--max-connection-seconds",
        metavar="SECONDS",
        type=positive_seconds,
        default=DEFAULTS.max_connection_seconds,
        help="close a WebSocket this long after it connected, as API Gateway does "
        f"({DEFAULTS.max_connection_seconds:g})",
    )
    parser.add_argument(
        "--stage",
        default=DEFAULTS.stage,
        help="run the functions with this stage's timeouts and memory, and poll the stream with "
        f"its event source mapping settings (userstatus_stack/stages.py; {DEFAULTS.stage})",
    )
    parser.add_argument(
        "--publish-auth",
        choices=PUBLISH_AUTH_MODES,
        help="who may post: open (anyone), audit (anyone; posts without a valid publish key "
        "are logged and counted), keys (a publish key of the site); default: the stage's",
    )
    parser.add_argument("--publish-keys-table", default=DEFAULTS.publish_keys_table)
    parser.add_argument(
        "--fanout-chunk-connections",
        metavar="N",
        type=chunk_size,
        help="split a site of more than N connections across invocations of the fan-out "
        "function, as the stack does (default: the stage's, 1000; small values let tests "
        "exercise the split)",
    )
    parser.add_argument(
        "--failure-queue",
        metavar="FILE",
        type=Path,
        help="append the stream batches given up on here (JSON lines, as Lambda sends them to "
        "the stack's SQS failure queue); default: a file of the run's own, named on READY",
    )
    faults = parser.add_argument_group(
        "faults on purpose", "each hits a share (0 to 1) of its events, at random"
    )
    faults.add_argument(
        "--fault-drop-disconnect",
        metavar="SHARE",
        type=share,
        default=0.0,
        help="run no $disconnect for closing connections (API Gateway's is best-effort)",
    )
    faults.add_argument(
        "--fault-post-429",
        metavar="SHARE",
        type=share,
        default=0.0,
        help="answer @connections posts 429 Rate exceeded (API Gateway's account throttling)",
    )
    faults.add_argument(
        "--fault-throttle-dynamodb",
        metavar="SHARE",
        type=share,
        default=0.0,
        help="fail the functions' DynamoDB calls as throttled "
        "(ProvisionedThroughputExceededException, after the SDK's retries)",
    )
    return parser.parse_args(argv)


def share(text: str) -> float:
    """A share from 0 to 1 (argparse reports the error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1: {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A number of seconds above 0 (argparse reports the error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0 seconds: {text!r}")
    return value


def chunk_size(text: str) -> int:
    """A chunk size the functions accept (``FANOUT_CHUNK_CONNECTIONS``; argparse reports)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_CHUNK_CONNECTIONS:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_CHUNK_CONNECTIONS}: {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the relay; the exit status."""
    args = parse_args(argv)
    return run(
        RelayOptions(
            host=args.host,
            http_port=args.http_port,
            ws_port=args.ws_port,
            dynamodb_endpoint=args.dynamodb_endpoint,
            dynamodb_port=args.dynamodb_port,
            messages_table=args.messages_table,
            connections_table=args.connections_table,
            publish_keys_table=args.publish_keys_table,
            publish_auth=args.publish_auth,
            idle_timeout=args.idle_timeout,
            max_connection_seconds=args.max_connection_seconds,
            stage=args.stage,
            fanout_chunk_connections=args.fanout_chunk_connections,
            failure_queue=args.failure_queue,
            faults=Faults(
                drop_disconnect=args.fault_drop_disconnect,
                post_429=args.fault_post_429,
                throttle_dynamodb=args.fault_throttle_dynamodb,
            ),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
