"""Keys: what the publish key check adds to a post, in the function.

A post in ``keys`` (or ``audit``) mode goes through ``PublishCheck.check``: the key's id is
parsed, its row (site, key id) read from the keys table unless the container read it in the
last 30 s, and the key's SHA-256 compared with the stored hash in constant time. Measured in
this process, interleaved, medians of each call:

* the whole ``POST /newlog`` through ``userstatus.http_api.handler`` in ``open`` mode, against
  moto's in-process DynamoDB (``mock_aws``): what the check is compared with;
* the check with the row cached (most posts: every post of a station after its first in 30 s
  in a container);
* the check with nothing cached: one ``GetItem`` on moto in this process (a real DynamoDB
  answers a GetItem over the network in single-digit milliseconds, which is what a miss adds
  in AWS; moto's figure is shown for the code's own share).

The alternative, an API Gateway authorizer with a cached result, was not built: an HTTP API's
authorizer sees headers, not the body, so it cannot tell the message's site (the key must match
it), and a WebSocket API runs authorizers only at ``$connect``, not per frame; it would also
bill an invocation per uncached authorization.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import boto3
from moto import mock_aws

from bench.common import (
    bench_main,
    interleaved,
    median_timing,
    seconds_text,
    set_dummy_aws_environment,
)
from bench.report import BenchResult, Goal, Table
from userstatus import http_api, keys
from userstatus.publish_keys import KeyStore, PublishCheck
from userstatus.runtime import runtime

MESSAGES_TABLE = "bench-keys-messages"
CONNECTIONS_TABLE = "bench-keys-connections"
KEYS_TABLE = "bench-keys-publish-keys"
SITE = "bench"
# DynamoDB on-demand, us-east-1: $0.125 per million read request units; an eventually
# consistent read of up to 4 KB is 0.5 of one (aws.amazon.com/dynamodb/pricing/on-demand/).
READ_PRICE_PER_MILLION = 0.125 * 0.5


def run(quick: bool) -> BenchResult:
    """Time a post in open mode, and the check with and without its row cached."""
    set_dummy_aws_environment()
    os.environ.update(
        {
            "MESSAGES_TABLE": MESSAGES_TABLE,
            "CONNECTIONS_TABLE": CONNECTIONS_TABLE,
            "PUBLISH_KEYS_TABLE": KEYS_TABLE,
            "PUBLISH_AUTH": "open",
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    rounds = 50 if quick else 1000

    class Context:
        aws_request_id = "bench"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 10_000

    body = json.dumps({"site": SITE, "log_message": "Slewing telescope...", "log_level": "info"})
    event = {
        "version": "2.0",
        "routeKey": "POST /newlog",
        "rawPath": "/newlog",
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/newlog", "sourceIp": "192.0.2.1"}},
        "body": body,
        "isBase64Encoded": False,
    }

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for schema, name in (
            (keys.MESSAGES, MESSAGES_TABLE),
            (keys.CONNECTIONS, CONNECTIONS_TABLE),
            (keys.PUBLISH_KEYS, KEYS_TABLE),
        ):
            client.create_table(**schema.create_table_kwargs(name))
        key = KeyStore(client, KEYS_TABLE).create(SITE, now=time.time()).key
        cached = PublishCheck("keys", KeyStore(client, KEYS_TABLE), stage="bench")
        uncached = PublishCheck(
            "keys", KeyStore(client, KEYS_TABLE, cache_seconds=0), stage="bench"
        )

        def post_open() -> None:
            answer = http_api.handler(event, Context())
            assert answer["statusCode"] == 200, answer["body"][:200]

        def check(publish: PublishCheck) -> Callable[[], None]:
            return lambda: publish.check(SITE, key, field="Authorization", source="192.0.2.1")

        timings = interleaved(
            {"post": post_open, "hit": check(cached), "miss": check(uncached)},
            rounds,
            collect_garbage=False,
        )
        runtime.cache_clear()

    med = {name: median_timing(found) for name, found in timings.items()}
    labels = {
        "post": "whole `POST /newlog`, open mode (handler, moto in-process)",
        "hit": "key check, row cached (hash, constant-time compare)",
        "miss": "key check, nothing cached (one GetItem on moto in-process)",
    }
    result = BenchResult(
        key="keys",
        title="Keys: the publish key check per post",
        method=(__doc__ or "").split("\n\n", 1)[1].strip(),
    )
    result.tables.append(
        Table(
            title=f"{rounds:,} calls each, interleaved",
            headers=["variant", "wall (median)", "CPU (median)", "share of a post"],
            rows=[
                [
                    labels[name],
                    seconds_text(med[name].wall),
                    seconds_text(med[name].cpu),
                    f"{med[name].wall / med['post'].wall:.1%}",
                ]
                for name in ("post", "hit", "miss")
            ],
            note="In AWS a miss adds one GetItem round trip (single-digit ms) instead of "
            "moto's in-process call.",
        )
    )
    result.notes.append(
        "Cost: a miss is one eventually consistent GetItem of a row under 4 KB, 0.5 read "
        f"request unit: ${READ_PRICE_PER_MILLION:.4f} per million misses on demand. With the "
        "30 s cache a station posting every second costs a container one read per 30 posts; "
        "unknown keys are not cached, so each post with a made-up key costs one read (bounded "
        "by the stage's throttling)."
    )
    result.goals.append(
        Goal(
            "Keys: check per post with the row cached",
            "(figure)",
            seconds_text(med["hit"].wall),
            None,
        )
    )
    return result


def main() -> None:
    """Run the keys benchmark and print its table."""
    bench_main(run, __doc__)


if __name__ == "__main__":
    main()
