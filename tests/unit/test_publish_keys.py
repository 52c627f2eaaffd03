"""Publish keys: the table, the cache, and the check each mode makes of a post."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from tests.unit.conftest import PUBLISH_KEYS_TABLE
from userstatus.errors import Forbidden, Unauthorized
from userstatus.publish_keys import (
    MAX_COUNTED_SITES,
    OTHER_SITES,
    WRONG_SCHEME,
    KeyStore,
    PublishCheck,
    bearer_key,
    frame_key,
    generate_key,
    key_hash,
    key_id_of,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(dynamodb: Any, clock: Clock) -> KeyStore:
    return KeyStore(dynamodb, PUBLISH_KEYS_TABLE, clock=clock)


def test_keys_are_random_well_formed_and_named_by_their_id() -> None:
    drawn = [generate_key() for _ in range(50)]
    assert len({key for key, _ in drawn}) == 50
    for key, key_id in drawn:
        assert re.fullmatch(r"usk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
        assert key_id_of(key) == key_id
    # 43 URL-safe characters carry 256 bits; at least the 128 the issue asks for.
    assert len(drawn[0][0].split("_", 2)[2]) * 6 >= 256


def test_the_table_keeps_a_hash_never_the_key(store: KeyStore, dynamodb: Any) -> None:
    new = store.create("site-a", now=1_764_700_000)
    (item,) = dynamodb.scan(TableName=PUBLISH_KEYS_TABLE)["Items"]
    assert new.key not in json.dumps(item)
    assert item == {
        "site": {"S": "site-a"},
        "key_id": {"S": new.info.key_id},
        "key_hash": {"S": key_hash(new.key)},
        "created_at": {"N": "1764700000"},
    }


def test_a_key_may_post_for_its_own_site_only(store: KeyStore) -> None:
    new = store.create("site-a", now=1)
    assert store.problem("site-a", new.key) is None
    assert store.problem("site-b", new.key) == "unknown"


def test_a_key_with_the_right_id_and_a_wrong_secret_is_unknown(store: KeyStore) -> None:
    new = store.create("site-a", now=1)
    forged = new.key[:-1] + ("A" if new.key[-1] != "A" else "B")
    assert store.problem("site-a", forged) == "unknown"


@pytest.mark.parametrize("text", ["", "usk_", "secret", "usk_0123456789ab_short", "x" * 300])
def test_text_that_is_no_key_is_malformed(store: KeyStore, text: str) -> None:
    assert store.problem("site-a", text) == "malformed"


def test_a_revoked_key_stops_working_once_the_cache_expires(
    store: KeyStore, clock: Clock, dynamodb: Any
) -> None:
    new = store.create("site-a", now=1)
    assert store.problem("site-a", new.key) is None
    admin = KeyStore(dynamodb, PUBLISH_KEYS_TABLE, cache_seconds=0)
    assert admin.revoke("site-a", new.info.key_id, now=2)
    clock.now += 29
    assert store.problem("site-a", new.key) is None  # still cached
    clock.now += 2
    assert store.problem("site-a", new.key) == "revoked"


def test_a_key_works_as_soon_as_it_is_created(store: KeyStore, dynamodb: Any) -> None:
    key, _ = generate_key()
    assert store.problem("site-a", key) == "unknown"
    new = KeyStore(dynamodb, PUBLISH_KEYS_TABLE).create("site-a", now=1)
    assert store.problem("site-a", new.key) is None


def test_cached_rows_are_not_read_again(store: KeyStore, dynamodb: Any) -> None:
    new = store.create("site-a", now=1)
    reads: list[str] = []
    dynamodb.meta.events.register(
        "before-call.dynamodb.GetItem", lambda **kwargs: reads.append("GetItem")
    )
    for _ in range(5):
        assert store.problem("site-a", new.key) is None
    assert reads == ["GetItem"]


def test_list_and_revoke(store: KeyStore) -> None:
    first = store.create("site-a", now=10)
    second = store.create("site-a", now=20)
    store.create("site-b", now=30)
    assert store.revoke("site-a", first.info.key_id, now=40)
    assert store.revoke("site-a", first.info.key_id, now=50)  # the first time is kept
    assert not store.revoke("site-b", first.info.key_id, now=60)
    listed = store.list("site-a")
    assert [(k.key_id, k.created_at, k.revoked_at) for k in listed] == [
        (first.info.key_id, 10, 40),
        (second.info.key_id, 20, None),
    ]
    assert store.list("site-c") == []


def test_open_mode_reads_no_key(store: KeyStore, dynamodb: Any) -> None:
    reads: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda **kwargs: reads.append("call"))
    PublishCheck("open", store, stage="dev").check("site-a", None, field="key", source="x")
    PublishCheck("open", None, stage="dev").check("site-a", "junk", field="key", source="x")
    assert reads == []


@pytest.mark.parametrize(
    ("given", "error", "message"),
    [
        (None, Unauthorized, "key is required: a publish key of site 'site-a'"),
        ("", Unauthorized, "key is required: a publish key of site 'site-a'"),
        (7, Forbidden, "key is not a publish key (usk_...)"),
        ("junk", Forbidden, "key is not a publish key (usk_...)"),
        ("other-site", Forbidden, "key is not a key of site 'site-a'"),
        ("revoked", Forbidden, "key was revoked"),
    ],
)
def test_keys_mode_refuses_a_post_without_a_valid_key(
    store: KeyStore, given: object, error: type[Exception], message: str
) -> None:
    keys_by_name = {
        "other-site": store.create("site-b", now=1).key,
        "revoked": store.create("site-a", now=1),
    }
    revoked = keys_by_name["revoked"]
    assert not isinstance(revoked, str)
    store.revoke("site-a", revoked.info.key_id, now=2)
    keys_by_name["revoked"] = revoked.key
    key = keys_by_name.get(given, given) if isinstance(given, str) else given
    with pytest.raises(error) as refused:
        PublishCheck("keys", store, stage="dev").check("site-a", key, field="key", source="x")
    assert isinstance(refused.value, Unauthorized | Forbidden)
    assert refused.value.field == "key"
    assert refused.value.message == message


def test_keys_mode_lets_a_valid_key_post(store: KeyStore) -> None:
    key = store.create("site-a", now=1).key
    PublishCheck("keys", store, stage="dev").check("site-a", key, field="key", source="x")


def test_audit_mode_logs_and_counts_an_unkeyed_post_and_lets_it_through(
    store: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    lines: list[str] = []
    check = PublishCheck("audit", store, stage="dev", write_metric=lines.append)
    key = store.create("site-a", now=1).key
    with caplog.at_level(logging.WARNING):
        check.check("site-a", key, field="key", source="198.51.100.7")
        check.check("site-a", None, field="key", source="198.51.100.7")
        check.check("site-b", key, field="key", source="203.0.113.9")
    warned = [r for r in caplog.records if r.getMessage() == "post without a valid key"]
    assert [(r.site, r.source, r.reason) for r in warned] == [  # type: ignore[attr-defined]
        ("site-a", "198.51.100.7", "missing"),
        ("site-b", "203.0.113.9", "unknown"),
    ]
    metrics = [json.loads(line) for line in lines]
    assert [(m["Site"], m["Stage"], m["UnkeyedPosts"]) for m in metrics] == [
        ("site-a", "dev", 1),
        ("site-b", "dev", 1),
    ]
    (directive,) = metrics[0]["_aws"]["CloudWatchMetrics"]
    assert directive == {
        "Namespace": "UserStatus",
        "Dimensions": [["Stage", "Site"]],
        "Metrics": [{"Name": "UnkeyedPosts", "Unit": "Count"}],
    }
    assert isinstance(metrics[0]["_aws"]["Timestamp"], int)


def test_made_up_site_names_cannot_add_metrics_without_end(
    store: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    lines: list[str] = []
    check = PublishCheck("audit", store, stage="dev", write_metric=lines.append)
    sites = [f"made-up-{n}" for n in range(MAX_COUNTED_SITES + 5)]
    with caplog.at_level(logging.WARNING):
        for site in [*sites, sites[0]]:
            check.check(site, None, field="key", source="192.0.2.1")
    counted = [json.loads(line)["Site"] for line in lines]
    assert counted[:MAX_COUNTED_SITES] == sites[:MAX_COUNTED_SITES]
    assert counted[MAX_COUNTED_SITES:-1] == [OTHER_SITES] * 5
    assert counted[-1] == sites[0]  # a site counted by name stays counted by name
    warned = [r.site for r in caplog.records if r.getMessage() == "post without a valid key"]  # type: ignore[attr-defined]
    assert warned == [*sites, sites[0]]


def test_the_metric_goes_to_standard_output_as_one_line(
    store: KeyStore, capsys: pytest.CaptureFixture[str]
) -> None:
    PublishCheck("audit", store, stage="dev").check("site-a", None, field="key", source="x")
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out)["Site"] == "site-a"


def test_a_check_without_its_table_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="needs the keys table"):
        PublishCheck("keys", None, stage="dev")


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (None, None),
        ("", None),
        ("Bearer usk_abc", "usk_abc"),
        ("bearer   usk_abc  ", "usk_abc"),
    ],
)
def test_bearer_keys_are_read_from_the_authorization_header(
    header: str | None, key: str | None
) -> None:
    headers = {} if header is None else {"authorization": header}
    assert bearer_key(headers) == key


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "usk_abc"])
def test_another_authorization_scheme_is_no_key(store: KeyStore, header: str) -> None:
    key = bearer_key({"authorization": header})
    assert key is WRONG_SCHEME
    with pytest.raises(Unauthorized) as refused:
        PublishCheck("keys", store, stage="dev").check(
            "site-a", key, field="Authorization", source="x"
        )
    assert refused.value.field == "Authorization"
    assert refused.value.message == (
        "Authorization is required: 'Bearer <publish key>' of site 'site-a'"
    )
    # Audit mode still takes it.
    PublishCheck("audit", store, stage="dev", write_metric=lambda line: None).check(
        "site-a", key, field="Authorization", source="x"
    )


def test_the_frame_key_is_taken_out_of_the_fields() -> None:
    fields: dict[str, Any] = {"site": "s", "key": "usk_x"}
    assert frame_key(fields) == "usk_x"
    assert fields == {"site": "s"}
    assert frame_key({"site": "s"}) is None
