"""The ``userstatus`` command: ``send`` a status message, ``tail`` a site's messages.

URLs come from ``--url`` / ``--ws-url``, else ``$USERSTATUS_URL`` / ``$USERSTATUS_WS_URL``, else
the local relay of ``make dev`` (http://127.0.0.1:3000, ws://127.0.0.1:3001). The site's
publish key (stages that check keys) comes from ``--key``, else ``$USERSTATUS_KEY``; ``tail``
needs none. The site, the URLs and the key, from flags or the environment, are checked before
anything is sent. Exit status: 0 on
success, 1 when the relay refused or could not be reached, 2 for bad arguments (a bad URL in
the environment included), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from userstatus_client import __version__
from userstatus_client.handler import SITE_PATTERN
from userstatus_client.http_api import (
    KEY_ENV,
    URL_ENV,
    RetryPolicy,
    UserStatusError,
    check_base_url,
    resolve_key,
    send,
)
from userstatus_client.levels import normalize_level
from userstatus_client.tail import WS_URL_ENV, follow, parse_duration

LEVEL_CHOICES = ("debug", "info", "warning", "error", "critical", "warn", "fatal")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for documentation and tests."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--site",
        required=True,
        type=_site,
        help="observatory site code, 1-64 letters, digits, '-' or '_', e.g. tst",
    )
    common.add_argument(
        "--key",
        type=_key,
        help=f"the site's publish key, where the stage checks keys (default: ${KEY_ENV}); "
        "tail reads without one",
    )
    common.add_argument(
        "--url",
        type=_http_url,
        help=f"relay HTTP base URL (default: ${URL_ENV}, else http://127.0.0.1:3000)",
    )

    parser = argparse.ArgumentParser(
        prog="userstatus",
        description="Send observatory status messages to the user status relay and follow them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    send_parser = commands.add_parser(
        "send",
        parents=[common],
        help="send one status message",
        description="Send one status message; prints what the relay stored as JSON.",
    )
    send_parser.add_argument(
        "--level",
        default="info",
        type=str.lower,
        choices=LEVEL_CHOICES,
        help="log level (default: info)",
    )
    send_parser.add_argument(
        "--timestamp", type=float, help="unix seconds of the event (default: now, by the relay)"
    )
    send_parser.add_argument(
        "--retries",
        type=_retries,
        default=3,
        help="retries on 5xx or connection errors, with backoff (default: 3)",
    )
    send_parser.add_argument(
        "message", nargs="+", help="message text (words are joined by spaces; '-' reads stdin)"
    )

    tail_parser = commands.add_parser(
        "tail",
        parents=[common],
        help="print recent messages, then follow new ones live",
        description="Print recent messages of a site, then follow new ones live until Ctrl-C. "
        "Needs the [follow] extra (websockets).",
    )
    tail_parser.add_argument(
        "--ws-url",
        type=_ws_url,
        help=f"relay WebSocket base URL (default: ${WS_URL_ENV}, else ws://127.0.0.1:3001)",
    )
    tail_parser.add_argument(
        "--since",
        default="1h",
        type=_duration,
        help="history to show first, e.g. 90s, 15m, 1h, 2d; 0 for none (default: 1h)",
    )
    tail_parser.add_argument(
        "--limit", type=_history_limit, help="at most this many history messages (1-1000)"
    )
    tail_parser.add_argument(
        "--color",
        "--colour",
        dest="colour",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the level (default: auto, on a terminal unless NO_COLOR is set)",
    )
    tail_parser.add_argument("--utc", action="store_true", help="print times in UTC")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit status."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    _urls_from_the_environment(parser, args)
    if args.key is None:
        try:
            resolve_key(None)
        except ValueError as exc:
            parser.error(f"${KEY_ENV}: {exc}")
    try:
        if args.command == "send":
            return _send(args, stdin, stdout)
        return _tail(args, stdout, stderr)
    except UserStatusError as exc:
        stderr.write(f"userstatus: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


def _send(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    message = stdin.read().rstrip("\n") if args.message == ["-"] else " ".join(args.message)
    stored = send(
        args.site,
        message,
        normalize_level(args.level),
        timestamp=args.timestamp,
        url=args.url,
        retry=RetryPolicy(retries=args.retries),
        key=args.key,
    )
    record = {
        "site": stored.site,
        "message": stored.message,
        "log_level": stored.log_level,
        "timestamp": stored.timestamp,
        "id": stored.id,
    }
    stdout.write(json.dumps(record) + "\n")
    return 0


def _tail(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    if args.colour == "auto":
        colour = (
            stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
        )
    else:
        colour = args.colour == "always"
    asyncio.run(
        follow(
            args.site,
            url=args.url,
            ws_url=args.ws_url,
            since=args.since,
            limit=args.limit,
            out=stdout,
            err=stderr,
            colour=colour,
            utc=args.utc,
        )
    )
    return 0


def _key(text: str) -> str:
    try:
        key = resolve_key(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if key is None:
        raise argparse.ArgumentTypeError("the publish key is empty")
    return key


def _urls_from_the_environment(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill ``--url`` / ``--ws-url`` from the environment when not given; exits 2 if invalid."""
    checks = [("url", URL_ENV, _http_url)]
    if args.command == "tail":
        checks.append(("ws_url", WS_URL_ENV, _ws_url))
    for dest, variable, check in checks:
        value = os.environ.get(variable)
        if getattr(args, dest) is None and value:
            try:
                setattr(args, dest, check(value))
            except argparse.ArgumentTypeError as exc:
                parser.error(f"${variable}: {exc}")


def _site(text: str) -> str:
    if not SITE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"site must be 1-64 letters, digits, '-' or '_', got {text!r}"
        )
    return text


def _http_url(text: str) -> str:
    try:
        return check_base_url(text, ("http", "https"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"relay URL {exc}") from None


def _ws_url(text: str) -> str:
    try:
        return check_base_url(text, ("ws", "wss"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"relay WebSocket URL {exc}") from None


def _duration(text: str) -> float:
    try:
        seconds: float = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return seconds


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"retries must be 0-10, got {text!r}")
    return value


def _history_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"limit must be 1-1000, got {text!r}")
    return value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
