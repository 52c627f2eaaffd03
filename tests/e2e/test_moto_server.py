"""The relay's moto server: the same answers as moto's own, served over kept-alive connections."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest

from userstatus_local import moto_server
from userstatus_local.dynamodb import EmbeddedDynamoDB, _free_port, _wait_until_listening

TABLE = "everything"
# Every attribute type, nested, including binary ones (which take moto's own path).
ITEMS: list[dict[str, Any]] = [
    {
        "pk": {"S": "site"},
        "sk": {"S": "a"},
        "string": {"S": "héllo \u2603 \U0001f600"},
        "empty_string": {"S": ""},
        "number": {"N": "-12.5e3"},
        "big_number": {"N": "12345678901234567890123456789012345678"},
        "true": {"BOOL": True},
        "false": {"BOOL": False},
        "null": {"NULL": True},
        "strings": {"SS": ["x", "y"]},
        "numbers": {"NS": ["1", "2.5"]},
        "list": {"L": [{"S": "a"}, {"N": "1"}, {"L": []}, {"M": {}}]},
        "map": {"M": {"inner": {"M": {"deep": {"SS": ["z"]}}}, "n": {"NULL": True}}},
    },
    {
        "pk": {"S": "site"},
        "sk": {"S": "b"},
        "binary": {"B": b"\x00\xffbinary"},
        "binaries": {"BS": [b"\x01", b"\x02"]},
        "map_with_binary": {"M": {"b": {"B": b"\x03"}, "s": {"S": "s"}}},
        "list_with_binary": {"L": [{"B": b"\x04"}, {"S": "t"}]},
    },
]


def exercise(endpoint: str) -> list[Any]:
    """Write ITEMS, then read them back every way the handlers and the poller do."""
    session = boto3.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    )
    client = session.client("dynamodb", endpoint_url=endpoint)
    streams = session.client("dynamodbstreams", endpoint_url=endpoint)
    client.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    arn = client.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    answers: list[Any] = [client.put_item(TableName=TABLE, Item=item) for item in ITEMS]
    keys = [{"pk": item["pk"], "sk": item["sk"]} for item in ITEMS]
    site = {":p": {"S": "site"}}
    answers += [client.get_item(TableName=TABLE, Key=key, ConsistentRead=True) for key in keys]
    answers += [
        client.query(
            TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues=site
        ),
        client.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=site,
            ProjectionExpression="sk, #m.inner",
            ExpressionAttributeNames={"#m": "map"},
            Limit=1,
        ),
        # Top-level projections: values copied as they are, and ones moto's round trip
        # rewrites (the number -12.5e3, maps, binary values). Sets are left out: moto's round
        # trip passes them through Python sets, whose order differs between processes.
        client.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=site,
            ProjectionExpression="sk, #s, big_number, #t, #n, absent",
            ExpressionAttributeNames={"#s": "string", "#t": "true", "#n": "null"},
        ),
        client.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=site,
            ProjectionExpression="sk, #n, #m, #b",
            ExpressionAttributeNames={"#n": "number", "#m": "map", "#b": "binary"},
        ),
        client.scan(TableName=TABLE),
        client.batch_get_item(RequestItems={TABLE: {"Keys": keys}}),
        client.put_item(
            TableName=TABLE, Item={**ITEMS[0], "sk": {"S": "c"}}, ReturnValues="ALL_OLD"
        ),
        client.delete_item(TableName=TABLE, Key=keys[1], ReturnValues="ALL_OLD"),
    ]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    answers.append([record["dynamodb"].get("NewImage") for record in records])
    answers.append([record["dynamodb"]["Keys"] for record in records])
    return [_without_metadata(answer) for answer in answers]


def _without_metadata(answer: Any) -> Any:
    if isinstance(answer, dict):
        return {k: v for k, v in answer.items() if k != "ResponseMetadata"}
    return answer


@contextlib.contextmanager
def moto_own_server() -> Iterator[str]:
    """``python -m moto.server`` on a free port; its endpoint."""
    port = _free_port("127.0.0.1")
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_until_listening(process, "127.0.0.1", port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def relay_moto_server() -> Iterator[str]:
    """The relay's moto server, as the relay starts it; its endpoint."""
    dynamodb = EmbeddedDynamoDB("127.0.0.1")
    try:
        yield f"http://127.0.0.1:{dynamodb.start()}"
    finally:
        dynamodb.stop()


def test_answers_are_the_same_as_moto_own() -> None:
    # Given moto's own server's answers to every read and write
    with moto_own_server() as endpoint:
        expected = exercise(endpoint)
    # When the relay's moto server answers the same calls
    with relay_moto_server() as endpoint:
        actual = exercise(endpoint)
    # Then clients parse exactly the same answers (binary values included)
    assert actual == expected
    assert expected[2]["Item"]["string"]["S"] == "héllo \u2603 \U0001f600"
    assert expected[3]["Item"]["binary"]["B"] == b"\x00\xffbinary"


@pytest.mark.parametrize(
    ("value", "copied"),
    [
        ({"S": "x"}, True),
        ({"N": "1"}, True),
        ({"BOOL": False}, True),
        ({"NULL": True}, True),
        ({"SS": ["a", "b"]}, True),
        ({"NS": ["1"]}, True),
        ({"L": [{"S": "a"}, {"M": {"k": {"N": "2"}}}]}, True),
        ({"M": {}}, True),
        ({"B": base64.b64encode(b"x").decode()}, False),
        ({"BS": ["eA=="]}, False),
        ({"M": {"k": {"B": "eA=="}}}, False),
        ({"L": [{"S": "a"}, {"B": "eA=="}]}, False),
        ({"N": Decimal(1)}, False),
        ({"N": 1}, False),
        ({"BOOL": "true"}, False),
        ({"S": "x", "N": "1"}, False),
        ({"SS": ["a", 1]}, False),
        ({"M": {1: {"S": "x"}}}, False),
        ("x", False),
        (None, False),
    ],
)
def test_only_values_already_in_wire_form_are_copied(value: Any, copied: bool) -> None:
    assert moto_server.is_wire_form(value) is copied


def test_connections_are_kept_alive() -> None:
    with relay_moto_server() as endpoint:
        connection = http.client.HTTPConnection(endpoint.removeprefix("http://"), timeout=10)
        headers = {
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/"
            "aws4_request, SignedHeaders=host, Signature=0",
        }
        answers = []
        for _ in range(3):
            connection.request("POST", "/", body=b"{}", headers=headers)
            answer = connection.getresponse()
            answers.append((answer.status, answer.getheader("Connection"), answer.read()))
        connection.close()
    # Three answers on one connection, none of them closing it
    assert [(status, json.loads(body)) for status, _, body in answers] == [
        (200, {"TableNames": []})
    ] * 3
    assert all((closing or "").lower() != "close" for _, closing, _ in answers)


def test_the_pinned_moto_has_what_the_server_patches() -> None:
    moto_server.check_moto_internals()


def test_a_moto_that_changed_what_is_patched_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.core import responses, serialize

    monkeypatch.delattr(responses, "method_names_from_class")
    monkeypatch.setattr(serialize.JSONSerializer, "_serialize", lambda self, serialized: None)
    with pytest.raises(moto_server.MotoChanged) as changed:
        moto_server.check_moto_internals()
    message = str(changed.value)
    assert "written against moto 5.2.5" in message
    assert "method_names_from_class is gone" in message
    assert "JSONSerializer._serialize takes ('self', 'serialized')" in message


def test_a_top_level_projection_of_plain_values_is_copied_not_round_tripped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    item = Item(
        hash_key=DynamoType({"S": "site"}),
        range_key=DynamoType({"S": "conn="}),
        attrs={
            "site": {"S": "site"},
            "connection_id": {"S": "conn="},
            "connected_at": {"N": "1764700000"},
            "expires_at": {"N": "1764707800"},
        },
    )
    round_trips: list[object] = []
    monkeypatch.setattr(
        moto_server, "_moto_project", lambda *args: round_trips.append(args) or item
    )
    copied = moto_server.project(item, [["connection_id"], ["connected_at"]])
    assert copied.to_json() == {
        "Attributes": {"connection_id": {"S": "conn="}, "connected_at": {"N": "1764700000"}}
    }
    assert round_trips == []
    # A number the round trip would rewrite, or a nested path, takes moto's own way.
    item.attrs["connected_at"] = DynamoType({"N": "1e3"})
    moto_server.project(item, [["connected_at"]])
    moto_server.project(item, [["site", "inner"]])
    assert len(round_trips) == 2


@pytest.mark.parametrize(
    "value",
    [
        {"S": "x"},
        {"S": ""},
        {"N": "-12.5e3"},
        {"N": "12345678901234567890123456789012345678"},
        {"B": b"\x00\xff"},
        {"BOOL": True},
        {"NULL": True},
        {"SS": ["a", "b"]},
        {"NS": ["1", "2.5"]},
        {"BS": [b"\x01"]},
        {"L": [{"S": "a"}, {"N": "1"}]},
        {"M": {"k": {"N": "2"}, "s": {"SS": ["z"]}}},
    ],
)
def test_values_read_without_moto_type_tests_are_moto_own(value: dict[str, Any]) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    read = moto_server.cast_value(DynamoType(value))
    moto_read = moto_server._moto_cast_value.fget(DynamoType(value))
    assert read == moto_read
    assert type(read) is type(moto_read)


def test_a_moto_whose_cast_value_is_no_property_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(moto_server, "_moto_cast_value", lambda self: self.value)
    with pytest.raises(moto_server.MotoChanged, match=r"DynamoType\.cast_value is not a property"):
        moto_server.check_moto_internals()
