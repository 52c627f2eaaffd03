"""``userstatus-keys``: the operators' command, against moto's DynamoDB and CloudFormation."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from userstatus import keys
from userstatus.publish_keys import KeyStore
from userstatus_admin.keys import KEYS_TABLE_OUTPUT, main
from userstatus_stack.stages import stack_name

TABLE = "keys-cli-test"
REGION = "us-east-1"


@dataclass
class Run:
    status: int
    out: str
    err: str


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        session.client("dynamodb").create_table(**keys.PUBLISH_KEYS.create_table_kwargs(TABLE))
        yield session


def run(session: boto3.session.Session, *argv: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    try:
        status = main(list(argv), stdout=out, stderr=err, session=session)
    except SystemExit as exit_:  # argparse's refusals
        status = int(exit_.code or 0)
    return Run(status, out.getvalue(), err.getvalue())


def on_table(*argv: str) -> list[str]:
    return [*argv, "--table", TABLE]


def test_create_prints_the_key_last_and_stores_only_its_hash(aws: boto3.session.Session) -> None:
    created = run(aws, *on_table("create", "--site", "tst"))
    assert created.status == 0, created.err
    key = created.out.splitlines()[-1]
    assert re.fullmatch(r"usk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
    store = KeyStore(aws.client("dynamodb"), TABLE, cache_seconds=0)
    assert store.problem("tst", key) is None
    assert store.problem("other", key) is not None
    rows = aws.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert len(rows) == 1
    secret = key.split("_", 2)[2]  # usk_<id>_<secret>; the secret may hold "_" itself
    assert secret not in json.dumps(rows)


def test_list_shows_ids_and_times_never_keys_and_revoke_marks_one(
    aws: boto3.session.Session,
) -> None:
    first = run(aws, *on_table("create", "--site", "tst")).out.splitlines()[-1]
    second = run(aws, *on_table("create", "--site", "tst")).out.splitlines()[-1]
    first_id, second_id = first.split("_", 2)[1], second.split("_", 2)[1]

    revoked = run(aws, *on_table("revoke", "--site", "tst", "--key-id", first_id))
    assert revoked.status == 0, revoked.err
    assert revoked.out == f"revoked key {first_id} of site tst\n"

    listed = run(aws, *on_table("list", "--site", "tst"))
    assert listed.status == 0
    rows = {line.split()[0]: line.split()[1:] for line in listed.out.splitlines()[1:]}
    assert set(rows) == {first_id, second_id}
    assert rows[first_id][1] != "-"  # a revocation time
    assert rows[second_id][1] == "-"
    assert first not in listed.out
    assert second not in listed.out
    store = KeyStore(aws.client("dynamodb"), TABLE, cache_seconds=0)
    assert store.problem("tst", first) is not None
    assert store.problem("tst", second) is None


def test_a_site_without_keys_says_so(aws: boto3.session.Session) -> None:
    listed = run(aws, *on_table("list", "--site", "empty"))
    assert (listed.status, listed.out) == (0, "site empty has no keys\n")


def test_revoking_a_key_the_site_does_not_have_exits_1_naming_it(
    aws: boto3.session.Session,
) -> None:
    key = run(aws, *on_table("create", "--site", "tst")).out.splitlines()[-1]
    key_id = key.split("_", 2)[1]
    refused = run(aws, *on_table("revoke", "--site", "other", "--key-id", key_id))
    assert refused.status == 1
    assert f"site other has no key {key_id}" in refused.err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["create", "--site", "tst"], "give --stage NAME, or --dynamodb-endpoint URL and --table"),
        (["create", "--site", "tst", "--stage", "dev", "--table", TABLE], "--stage finds the"),
        (["create", "--site", "no spaces", "--table", TABLE], "--site"),
        (["revoke", "--site", "tst", "--key-id", "xyz", "--table", TABLE], "12 hex digits"),
        (["revoke", "--site", "tst", "--table", TABLE], "--key-id"),
        (["rotate", "--site", "tst", "--table", TABLE], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_saying_what_is_wrong(
    aws: boto3.session.Session, argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = run(aws, *argv)
    assert refused.status == 2
    assert says in capsys.readouterr().err


def test_a_stage_finds_its_table_in_the_stacks_outputs(aws: boto3.session.Session) -> None:
    template = {
        "Resources": {"Nothing": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {KEYS_TABLE_OUTPUT: {"Value": TABLE}},
    }
    aws.client("cloudformation").create_stack(
        StackName=stack_name("dev"), TemplateBody=json.dumps(template)
    )
    created = run(aws, "create", "--site", "tst", "--stage", "dev")
    assert created.status == 0, created.err
    key = created.out.splitlines()[-1]
    assert KeyStore(aws.client("dynamodb"), TABLE, cache_seconds=0).problem("tst", key) is None


def test_a_stage_not_deployed_or_deployed_without_keys_exits_1_saying_so(
    aws: boto3.session.Session,
) -> None:
    missing = run(aws, "list", "--site", "tst", "--stage", "dev")
    assert missing.status == 1
    assert f"stack {stack_name('dev')} not found" in missing.err
    template = {"Resources": {"Nothing": {"Type": "AWS::SQS::Queue"}}}
    aws.client("cloudformation").create_stack(
        StackName=stack_name("dev"), TemplateBody=json.dumps(template)
    )
    old = run(aws, "list", "--site", "tst", "--stage", "dev")
    assert old.status == 1
    assert f"has no {KEYS_TABLE_OUTPUT} output: deploy this version first" in old.err


def test_a_table_that_is_not_there_exits_1_without_a_stack_trace(
    aws: boto3.session.Session,
) -> None:
    failed = run(aws, "list", "--site", "tst", "--table", "no-such-table")
    assert failed.status == 1
    assert failed.err.startswith("userstatus-keys: error:")
    assert "Traceback" not in failed.err
