"""Per-site publish keys: who may post a site's messages.

A stage runs in one of three modes (``PUBLISH_AUTH``):

* ``open``: anyone may post (the old service's behaviour, and the default); keys are not read.
* ``audit``: every post is accepted, and one without a valid key for its site is logged (site,
  source, reason) and counted in the CloudWatch metric ``UnkeyedPosts`` of namespace
  ``UserStatus``, dimensions ``Stage`` and ``Site``, so operators see which stations still post
  without a key before they switch to ``keys`` (a container names at most
  ``MAX_COUNTED_SITES`` sites in the metric, the rest as ``OTHER_SITES``; the log names all).
* ``keys``: a post needs a valid key for its site: none answers 401, another site's key, an
  unknown key or a revoked key 403, and nothing is stored.

A key is ``usk_<key id>_<secret>``: the key id is 12 hex digits (48 random bits; it names the
key in listings and revocations and is not secret), the secret 43 URL-safe characters (256
random bits). The keys table keeps, under (site, key id), the SHA-256 of the whole key (keys are
random, so a fast hash is enough), when it was created and when it was revoked; never the key.
A post's key is hashed and compared with the stored hash in constant time.

Rows read are kept in the container for ``CACHE_SECONDS`` (30 s), so a revoked key stops
working within a minute (the cache, plus DynamoDB's eventually consistent read, well under a
second: docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html).
Keys not found are not cached, so a key works as soon as it is created.

Metrics are written in CloudWatch's embedded metric format: one JSON line on standard output,
which CloudWatch Logs turns into the metric without a ``PutMetricData`` call
(docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from userstatus import keys
from userstatus.config import PublishAuth
from userstatus.errors import Forbidden, Unauthorized
from userstatus.store import store_errors

KEY_PREFIX = "usk_"
KEY_ID_HEX_DIGITS = 12
SECRET_BYTES = 32
CACHE_SECONDS = 30.0
METRIC_NAMESPACE = "UserStatus"
UNKEYED_POSTS_METRIC = "UnkeyedPosts"
# Custom metrics are billed per metric (dimension values included), and anyone can post with
# made-up site names: a container counts at most this many sites by name, the rest together
# under OTHER_SITES (no site can be named so: site names are letters, digits, - and _).
MAX_COUNTED_SITES = 100
OTHER_SITES = "(other sites)"
_KEY_PATTERN = re.compile(r"usk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
_KEY_ID_PATTERN = re.compile(r"[0-9a-f]{12}")
# A header or field longer than this is no key (and is not hashed).
MAX_KEY_LENGTH = 256
logger = logging.getLogger("userstatus.publish_keys")


class _WrongScheme:
    """An Authorization header of another scheme than Bearer: no publish key given."""

    def __repr__(self) -> str:
        return "WRONG_SCHEME"


WRONG_SCHEME = _WrongScheme()
# How each place a key is read from says what it expects, in a 401.
_EXPECTED = {"Authorization": "'Bearer <publish key>'", "key": "a publish key"}


@dataclass(frozen=True)
class KeyInfo:
    """What the table holds about one key (never the key itself)."""

    site: str
    key_id: str
    created_at: int
    revoked_at: int | None = None


@dataclass(frozen=True)
class NewKey:
    """A key just created: ``key`` is shown once and stored nowhere."""

    key: str
    info: KeyInfo


def key_hash(key: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    match = _KEY_PATTERN.fullmatch(key)
    return match.group(1) if match else None


def generate_key() -> tuple[str, str]:
    """A new random key and its id."""
    key_id = secrets.token_hex(KEY_ID_HEX_DIGITS // 2)
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}", key_id


class KeyStore:
    """The publish keys table: create, list, revoke, and look up with a short cache."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._table = table_name
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, str, bool]] = {}

    def create(self, site: str, *, now: float) -> NewKey:
        """Store a new key for ``site``; the key is in the answer only."""
        for _ in range(3):
            key, key_id = generate_key()
            info = KeyInfo(site=site, key_id=key_id, created_at=int(now))
            try:
                with store_errors():
                    self._client.put_item(
                        TableName=self._table,
                        Item={
                            keys.PUBLISH_KEYS.partition_key.name: {"S": site},
                            keys.PUBLISH_KEYS.sort_key.name: {"S": key_id},
                            "key_hash": {"S": key_hash(key)},
                            "created_at": {"N": str(info.created_at)},
                        },
                        ConditionExpression="attribute_not_exists(#id)",
                        ExpressionAttributeNames={"#id": keys.PUBLISH_KEYS.sort_key.name},
                    )
            except ClientError as error:
                if _is_condition_failure(error):
                    continue  # an id already taken (one in 2**48): draw another
                raise
            return NewKey(key=key, info=info)
        raise RuntimeError("could not draw an unused key id")

    def list(self, site: str) -> list[KeyInfo]:
        """Every key of ``site``, revoked ones included, oldest first."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#site = :site",
            "ExpressionAttributeNames": {"#site": keys.PUBLISH_KEYS.partition_key.name},
            "ExpressionAttributeValues": {":site": {"S": site}},
        }
        found: list[KeyInfo] = []
        while True:
            with store_errors():
                page = self._client.query(**request)
            found += [_info(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found, key=lambda info: (info.created_at, info.key_id))

    def revoke(self, site: str, key_id: str, *, now: float) -> bool:
        """Mark a key of ``site`` revoked; False if the site has no such key. Revoking twice
        keeps the first time."""
        try:
            with store_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key={
                        keys.PUBLISH_KEYS.partition_key.name: {"S": site},
                        keys.PUBLISH_KEYS.sort_key.name: {"S": key_id},
                    },
                    UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                    ConditionExpression="attribute_exists(#id)",
                    ExpressionAttributeNames={"#id": keys.PUBLISH_KEYS.sort_key.name},
                    ExpressionAttributeValues={":now": {"N": str(int(now))}},
                )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def problem(self, site: str, key: str) -> str | None:
        """Why ``key`` may not post for ``site`` ("unknown", "revoked"), or None if it may."""
        key_id = key_id_of(key) if len(key) <= MAX_KEY_LENGTH else None
        if key_id is None:
            return "malformed"
        row = self._row(site, key_id)
        if row is None or not hmac.compare_digest(row[0], key_hash(key)):
            return "unknown"
        return "revoked" if row[1] else None

    def _row(self, site: str, key_id: str) -> tuple[str, bool] | None:
        now = self._clock()
        cached = self._cache.get((site, key_id))
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        with store_errors():
            item = self._client.get_item(
                TableName=self._table,
                Key={
                    keys.PUBLISH_KEYS.partition_key.name: {"S": site},
                    keys.PUBLISH_KEYS.sort_key.name: {"S": key_id},
                },
                ProjectionExpression="key_hash, revoked_at",
            ).get("Item")
        if item is None:
            self._cache.pop((site, key_id), None)
            return None
        row = (item["key_hash"]["S"], "revoked_at" in item)
        self._cache[(site, key_id)] = (now + self._cache_seconds, *row)
        return row


class PublishCheck:
    """The check a post goes through before it is stored, in the stage's mode."""

    def __init__(
        self,
        mode: PublishAuth,
        store: KeyStore | None,
        *,
        stage: str,
        write_metric: Callable[[str], None] | None = None,
    ) -> None:
        if mode != "open" and store is None:
            raise ValueError(f"publish auth {mode!r} needs the keys table")
        self.mode = mode
        self._store = store
        self._stage = stage
        self._write_metric = write_metric or _print_line
        self._counted_sites: set[str] = set()

    def check(self, site: str, key: object, *, field: str, source: str) -> None:
        """Allow the post, or raise ``Unauthorized`` / ``Forbidden`` (``keys`` mode), or log
        and count it (``audit`` mode). ``key`` is what ``field`` (``Authorization`` or
        ``key``) held: None, "" or ``WRONG_SCHEME`` for none, a string to check, else junk."""
        if self.mode == "open":
            return
        assert self._store is not None
        if key is None or key == "" or key is WRONG_SCHEME:
            problem: str | None = "missing"
        elif isinstance(key, str):
            problem = self._store.problem(site, key)
        else:
            problem = "malformed"
        if problem is None:
            return
        if self.mode == "audit":
            logger.warning(
                "post without a valid key",
                extra={"site": site, "source": source, "reason": problem},
            )
            self._write_metric(self._unkeyed_post_metric(site))
            return
        if problem == "missing":
            expected = _EXPECTED.get(field, "a publish key")
            raise Unauthorized(field, f"{field} is required: {expected} of site {site!r}")
        if problem == "malformed":
            raise Forbidden(field, f"{field} is not a publish key (usk_...)")
        if problem == "revoked":
            raise Forbidden(field, f"{field} was revoked")
        raise Forbidden(field, f"{field} is not a key of site {site!r}")

    def _unkeyed_post_metric(self, site: str) -> str:
        if site not in self._counted_sites:
            if len(self._counted_sites) < MAX_COUNTED_SITES:
                self._counted_sites.add(site)
            else:
                site = OTHER_SITES
        return json.dumps(
            {
                "_aws": {
                    "Timestamp": int(time.time() * 1000),
                    "CloudWatchMetrics": [
                        {
                            "Namespace": METRIC_NAMESPACE,
                            "Dimensions": [["Stage", "Site"]],
                            "Metrics": [{"Name": UNKEYED_POSTS_METRIC, "Unit": "Count"}],
                        }
                    ],
                },
                "Stage": self._stage,
                "Site": site,
                UNKEYED_POSTS_METRIC: 1,
            },
            separators=(",", ":"),
        )


def bearer_key(headers: Mapping[str, str]) -> str | _WrongScheme | None:
    """The key of an ``Authorization: Bearer <key>`` header (names lower-cased): None without
    one, ``WRONG_SCHEME`` for another scheme (RFC 6750 section 2.1: the scheme is
    case-insensitive)."""
    value = headers.get("authorization")
    if value is None or not value.strip():
        return None
    scheme, _, key = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return WRONG_SCHEME
    return key.strip()


def frame_key(fields: dict[str, Any]) -> object:
    """The ``key`` field of a ``newlog`` frame, taken out of ``fields`` (so it is never part of
    the message); None if absent."""
    return fields.pop("key", None)


def valid_key_id(value: str) -> bool:
    """Whether ``value`` has the form of a key id (12 hex digits)."""
    return bool(_KEY_ID_PATTERN.fullmatch(value))


def _info(item: dict[str, Any]) -> KeyInfo:
    revoked = item.get("revoked_at")
    return KeyInfo(
        site=item[keys.PUBLISH_KEYS.partition_key.name]["S"],
        key_id=item[keys.PUBLISH_KEYS.sort_key.name]["S"],
        created_at=int(item["created_at"]["N"]),
        revoked_at=int(revoked["N"]) if revoked else None,
    )


def _is_condition_failure(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
