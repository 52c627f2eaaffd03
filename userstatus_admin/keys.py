"""``userstatus-keys create|list|revoke --site S``: manage a site's publish keys.

Against a deployed stage (``--stage dev``: the keys table is read from the stage's stack
outputs, with the usual AWS credentials and region), or against any DynamoDB endpoint and
table (``--dynamodb-endpoint URL --table NAME``: the local relay prints both on its READY line,
``dynamodb=URL`` and ``keys_table=NAME``).

* ``create --site S`` stores a new key and prints it as the last line of its output. It is shown
  this once: the table keeps only its hash.
* ``list --site S`` prints each key's id, creation time and revocation time (never a key).
* ``revoke --site S --key-id ID`` revokes a key; posts with it are refused within a minute
  (``userstatus.publish_keys.CACHE_SECONDS``). Revoking a revoked key changes nothing.

Exit status: 0 done, 1 no such key or stage, or DynamoDB refused; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from userstatus.errors import InvalidInput, StoreUnavailable
from userstatus.model import validate_site
from userstatus.publish_keys import KeyInfo, KeyStore, valid_key_id
from userstatus_stack.stages import stack_name

# The stack output naming the keys table (userstatus_stack/stack.py).
KEYS_TABLE_OUTPUT = "PublishKeysTableName"


class AdminError(Exception):
    """Something the operator is told about, without a stack trace."""


def build_parser() -> argparse.ArgumentParser:
    """The command line: a subcommand, a site, and where the keys table is."""
    where = argparse.ArgumentParser(add_help=False)
    target = where.add_argument_group("where the keys are (a stage, or an endpoint and table)")
    target.add_argument("--stage", help="a deployed stage (dev, prod): its stack's keys table")
    target.add_argument("--region", help="the stage's AWS region (default: your AWS config)")
    target.add_argument("--dynamodb-endpoint", metavar="URL", help="a DynamoDB endpoint URL")
    target.add_argument("--table", metavar="NAME", help="the keys table at that endpoint")
    where.add_argument("--site", required=True, type=_site, help="the site the keys are for")
    parser = argparse.ArgumentParser(
        prog="userstatus-keys",
        description="Create, list and revoke the publish keys of a site.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("create", parents=[where], help="create a key (printed last, once)")
    commands.add_parser("list", parents=[where], help="list a site's keys (ids, never keys)")
    revoke = commands.add_parser("revoke", parents=[where], help="revoke a key by its id")
    revoke.add_argument("--key-id", required=True, type=_key_id, help="the id `list` shows")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    session: Any = None,
) -> int:
    """Run the command; the exit status."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.stage is None and args.table is None:
        parser.error("give --stage NAME, or --dynamodb-endpoint URL and --table NAME")
    if args.stage is not None and (args.table is not None or args.dynamodb_endpoint is not None):
        parser.error("--stage finds the table itself: leave out --table and --dynamodb-endpoint")
    try:
        store = KeyStore(*_keys_table(args, session), cache_seconds=0)
        return _run(args, store, stdout)
    except AdminError as error:
        stderr.write(f"userstatus-keys: error: {error}\n")
        return 1
    except StoreUnavailable as error:
        stderr.write(f"userstatus-keys: error: DynamoDB unavailable ({error.__cause__!r})\n")
        return 1
    except (ClientError, BotoCoreError) as error:
        stderr.write(f"userstatus-keys: error: {error}\n")
        return 1


def _run(args: argparse.Namespace, store: KeyStore, stdout: TextIO) -> int:
    if args.command == "create":
        new = store.create(args.site, now=time.time())
        stdout.write(
            f"site: {new.info.site}\nkey id: {new.info.key_id}\n"
            f"created: {_iso(new.info.created_at)}\n"
            "This key is shown once; the table keeps only its hash. Give it to the station\n"
            "(USERSTATUS_KEY, or --key) and keep it secret. The key:\n"
            f"{new.key}\n"
        )
        return 0
    if args.command == "list":
        found = store.list(args.site)
        if not found:
            stdout.write(f"site {args.site} has no keys\n")
            return 0
        stdout.write(f"{'key id':<14}{'created':<22}revoked\n")
        stdout.writelines(_row(info) for info in found)
        return 0
    if not store.revoke(args.site, args.key_id, now=time.time()):
        raise AdminError(f"site {args.site} has no key {args.key_id} (see: list --site)")
    stdout.write(f"revoked key {args.key_id} of site {args.site}\n")
    return 0


def _keys_table(args: argparse.Namespace, session: Any) -> tuple[Any, str]:
    """A DynamoDB client and the keys table's name, for the target the arguments name."""
    if session is None:
        import boto3

        session = boto3.session.Session(region_name=args.region)
    if args.stage is None:
        client = session.client("dynamodb", endpoint_url=args.dynamodb_endpoint)
        return client, args.table
    name = stack_name(args.stage)
    cloudformation = session.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        raise AdminError(f"stage {args.stage}: stack {name} not found ({error})") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if KEYS_TABLE_OUTPUT not in outputs:
        raise AdminError(
            f"stack {name} has no {KEYS_TABLE_OUTPUT} output: deploy this version first"
        )
    return session.client("dynamodb"), outputs[KEYS_TABLE_OUTPUT]


def _row(info: KeyInfo) -> str:
    revoked = _iso(info.revoked_at) if info.revoked_at is not None else "-"
    return f"{info.key_id:<14}{_iso(info.created_at):<22}{revoked}\n"


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _site(text: str) -> str:
    try:
        return validate_site(text)
    except InvalidInput as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _key_id(text: str) -> str:
    if not valid_key_id(text):
        raise argparse.ArgumentTypeError(f"a key id is 12 hex digits (see: list), not {text!r}")
    return text


if __name__ == "__main__":
    sys.exit(main())
