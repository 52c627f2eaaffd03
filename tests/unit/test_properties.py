"""Property tests of validation and storage: what is accepted round-trips, what is refused is
not written.

Through the real handlers on moto: a posted message that is accepted comes back unchanged from
``GET /recent-logs`` (message text, level as normalised, timestamp as the posted number, to the
nanosecond) and in the broadcast frame (built by the broadcaster from the stored item, posted
to the fake management API; timestamp the string of whole seconds). Any input that is refused
answers 4xx with a JSON ``error`` and the ``field`` at fault, and leaves the table empty.
No input ever gets a 5xx or an answer that is not UTF-8 JSON.

Hypothesis and fixtures: the moto tables and the fake management API are function-scoped
fixtures, created once per test function and shared by its examples; each example starts by
emptying the tables and the fake's records (``clean``), so examples are independent. That is
why the ``function_scoped_fixture`` health check is suppressed: creating moto tables per
example would cost ~0.2 s each.
"""

from __future__ import annotations

import base64
import json
import math
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tests.events import with_body, with_query
from tests.fakes.lambda_context import FakeLambdaContext
from tests.fakes.management_api import FakeManagementApi
from userstatus import broadcast, http_api, keys
from userstatus.model import (
    FUTURE_TIMESTAMP_ADJUSTMENT,
    LEVELS,
    MAX_BODY_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_TIMESTAMP,
)
from userstatus.runtime import runtime

pytestmark = pytest.mark.usefixtures("dynamodb")

MESSAGES = "messages-test"
NANOSECOND = Decimal("1e-9")
FIELDS = {"site", "log_message", "log_level", "timestamp", "body"}

shared_fixtures = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies -----------------------------------------------------------------------------

# Every code point: all planes, control characters, NUL and lone surrogates.
any_char = st.characters(exclude_categories=())
any_text = st.text(any_char, max_size=40)
unicode_char = st.characters(exclude_categories=("Cs",))

valid_site = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
valid_message = st.one_of(
    st.text(unicode_char, min_size=1, max_size=300),
    st.sampled_from(
        [
            "\x00",
            "\x00\x01\x1f\x7f\u2028\ufeff",
            "x" * MAX_MESSAGE_BYTES,
            "é" * (MAX_MESSAGE_BYTES // 2),
            "😀" * (MAX_MESSAGE_BYTES // 4),
            "\U0010ffff" * 10,
            '"\\/<script>',
        ]
    ),
    st.integers(1, MAX_MESSAGE_BYTES).map(lambda n: "a" * n),
)
_LEVEL_NAMES = {**{level: level for level in LEVELS}, "warn": "warning", "fatal": "critical"}


@st.composite
def valid_level(draw: st.DrawFn) -> tuple[Any, str]:
    """A log_level a client may send, and the level it is stored as."""
    if draw(st.booleans()):
        return draw(st.sampled_from([None, "absent"])), "info"
    name = draw(st.sampled_from(sorted(_LEVEL_NAMES)))
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    padding = st.text(st.sampled_from(" \t\n\r"), max_size=3)
    return draw(padding) + cased + draw(padding), _LEVEL_NAMES[name]


def _quantized(value: Decimal) -> Decimal:
    exponent = value.as_tuple().exponent
    return value.quantize(NANOSECOND) if isinstance(exponent, int) and exponent < -9 else value


_decimal_seconds = st.decimals(
    min_value=NANOSECOND, max_value=Decimal(MAX_TIMESTAMP), allow_nan=False, allow_infinity=False
)


@st.composite
def valid_timestamp(draw: st.DrawFn) -> tuple[Any, Decimal | None]:
    """A timestamp a client may send, and the seconds it is stored as (None: time of receipt)."""
    kind = draw(st.sampled_from(["none", "int", "float", "edge", "string"]))
    if kind == "none":
        return draw(st.sampled_from([None, "absent"])), None
    if kind == "int":
        value: Any = draw(st.integers(1, MAX_TIMESTAMP))
        return value, Decimal(value)
    if kind == "float":
        value = draw(st.floats(min_value=1e-9, max_value=MAX_TIMESTAMP))
        return value, _quantized(Decimal(repr(value)))
    if kind == "edge":
        value = draw(
            st.sampled_from(
                [1, 1e-9, 6e-10, MAX_TIMESTAMP, float(MAX_TIMESTAMP), 1604514063.123456789]
            )
        )
        return value, _quantized(Decimal(repr(value) if isinstance(value, float) else value))
    # As text: a plain decimal (no exponent), JSON white space around it, at most 64 characters.
    number = draw(_decimal_seconds)
    text = draw(st.sampled_from(["{:f}", " {:f} ", "\t{:f}\n", "+{:f}", "\r\n{:f}"]))
    value = text.format(number)
    assume(len(value) <= 64)
    return value, _quantized(Decimal(value.strip()))


@st.composite
def valid_post(draw: st.DrawFn) -> tuple[dict[str, Any], str, Decimal | None]:
    """Fields of an acceptable POST, the level stored and the seconds stored."""
    fields: dict[str, Any] = {"site": draw(valid_site), "log_message": draw(valid_message)}
    level, stored_level = draw(valid_level())
    timestamp, stored_seconds = draw(valid_timestamp())
    if level != "absent":
        fields["log_level"] = level
    if timestamp != "absent":
        fields["timestamp"] = timestamp
    extra = draw(st.dictionaries(st.text(unicode_char, max_size=8), st.integers(), max_size=2))
    fields.update({k: v for k, v in extra.items() if k not in fields})
    return fields, stored_level, stored_seconds


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from([0, -1, 1e-10, 5e-10, MAX_TIMESTAMP + 1, 10**20, 2**63, 1e308])
    | any_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3)
    ),
    max_leaves=8,
)
numeric_strings = st.sampled_from(
    ["0", "-1", " 1 ", "1e3", "1E-10", "NaN", "inf", "-Infinity", "1_000", "0x10", "", " ", "1e999"]
)
field_values = {
    "site": valid_site | json_values | st.text(any_char, min_size=60, max_size=70),
    "log_message": valid_message | json_values | st.just("x" * (MAX_MESSAGE_BYTES + 1)),
    "log_level": json_values | valid_level().map(lambda pair: pair[0]),
    "timestamp": json_values | numeric_strings | valid_timestamp().map(lambda pair: pair[0]),
}


@st.composite
def any_post_fields(draw: st.DrawFn) -> dict[str, Any]:
    """Any JSON object: each known field absent or of any type, plus unknown fields."""
    fields: dict[str, Any] = {}
    for name, values in field_values.items():
        value = draw(values)
        if value != "absent" and draw(st.integers(0, 9)) > 0:
            fields[name] = value
    fields.update(draw(st.dictionaries(any_text, json_values, max_size=2)))
    return fields


def _nested(depth: int, opener: str) -> str:
    closer = {"[": "]", "{": "}"}[opener]
    inner = (
        '{"a":' * depth + "1" + "}" * depth if opener == "{" else opener * depth + closer * depth
    )
    return json.dumps({"site": "tst", "log_message": "x"})[:-1] + ', "deep": ' + inner + "}"


raw_bodies = st.one_of(
    any_text,
    st.text(any_char, min_size=1, max_size=2000),
    st.builds(json.dumps, json_values),
    st.builds(_nested, st.integers(1, 60_000), st.sampled_from("[{")),
    st.builds(
        lambda key, a, b: (
            f'{{"site": "tst", "log_message": "x", {json.dumps(key)}: {a}, {json.dumps(key)}: {b}}}'
        ),
        any_text,
        st.sampled_from(["1", '"v"', "null"]),
        st.sampled_from(["2", "[]"]),
    ),
    st.sampled_from(
        [
            "",
            "null",
            "[]",
            '"text"',
            "1",
            '{"site": "tst", "log_message": "x"} trailing',
            '{"site": "tst", "log_message": "x", "timestamp": NaN}',
            '{"site": "tst", "log_message": "x", "timestamp": Infinity}',
            '{"site": "tst", "log_message": "x", "timestamp": 1e400}',
            '{"site": "tst", "log_message": "x", "timestamp": ' + "9" * 5000 + "}",
            '{"site": "tst", "log_message": "\\ud800"}',
            '{"site": "tst", "log_message": "' + "x" * MAX_BODY_BYTES + '"}',
        ]
    ),
)


# -- helpers --------------------------------------------------------------------------------


def clean(dynamodb: Any, fake: FakeManagementApi | None = None) -> None:
    """Empty the messages table and the fake's records: each example starts from nothing.

    Connection rows are kept: every example subscribes the same id, and a site's broadcast
    only reads that site's rows.
    """
    names = (keys.MESSAGES.partition_key.name, keys.MESSAGES.sort_key.name)
    for item in dynamodb.scan(TableName=MESSAGES, ProjectionExpression="site, sk")["Items"]:
        dynamodb.delete_item(TableName=MESSAGES, Key={name: item[name] for name in names})
    if fake is not None:
        fake.posts.clear()


def call(event: dict[str, Any]) -> tuple[int, Any]:
    response = http_api.handler(event, FakeLambdaContext())
    status = response["statusCode"]
    # An answer is UTF-8 JSON, whatever the input: it must survive encoding.
    body = json.loads(response["body"].encode("utf-8"))
    assert status < 500, body
    return status, body


def assert_refused(status: int, body: Any, dynamodb: Any) -> None:
    assert status in (400, 413), body
    assert isinstance(body["error"], str)
    assert body["error"]
    assert isinstance(body["field"], str)
    assert dynamodb.scan(TableName=MESSAGES)["Items"] == []


def assert_round_trip(
    fields: dict[str, Any],
    stored_level: str,
    stored_seconds: Decimal | None,
    answer: dict[str, Any],
    dynamodb: Any,
    fake: FakeManagementApi,
    received_between: tuple[float, float],
) -> None:
    """The POST answer, recent-logs and the broadcast frame all carry what was posted."""
    [item] = dynamodb.scan(TableName=MESSAGES)["Items"]
    seconds = Decimal(item["timestamp"]["N"])
    replaced = stored_seconds is not None and stored_seconds > received_between[0] + 86400
    if replaced:
        # A wrong clock (more than 24 h ahead): stored at the time of receipt, and said so.
        assert answer.pop("adjusted") == {"timestamp": FUTURE_TIMESTAMP_ADJUSTMENT}
        stored_seconds = None
    else:
        assert "adjusted" not in answer
    if stored_seconds is None:
        assert received_between[0] - 1e-6 <= seconds <= received_between[1] + 1e-6
    else:
        assert seconds == stored_seconds
    number = int(seconds) if seconds == seconds.to_integral_value() else float(seconds)
    posted = fields.get("timestamp")
    if isinstance(posted, int | float) and stored_seconds == Decimal(repr(posted)):
        assert number == posted  # as posted, to the last digit a float carries
    expected = {
        "site": fields["site"],
        "message": fields["log_message"],
        "log_level": stored_level,
        "timestamp": number,
    }
    assert answer == {**expected, "id": item["sk"]["S"]}

    status, logs = call(
        with_query("http_get_recent_logs", {"site": fields["site"], "after_time": "0"})
    )
    assert (status, logs) == (200, [expected])

    runtime().connections.add(fields["site"], "subscriber=", now=time.time())
    record = {
        "eventName": "INSERT",
        "dynamodb": {"NewImage": item, "SequenceNumber": "1", "StreamViewType": "NEW_IMAGE"},
    }
    assert broadcast.handler({"Records": [record]}, FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    [frame] = [json.loads(body) for body in fake.posts_to("subscriber=")]
    assert frame == {**expected, "timestamp": str(math.floor(seconds))}


# -- properties -----------------------------------------------------------------------------


@settings(shared_fixtures, max_examples=100)
@given(post=valid_post())
@example(post=({"site": "a", "log_message": "\x00"}, "info", None))
@example(
    post=(
        {"site": "Z" * 64, "log_message": "é" * 8192, "timestamp": MAX_TIMESTAMP},
        "info",
        Decimal(MAX_TIMESTAMP),
    )
)
@example(post=({"site": "t", "log_message": "x", "timestamp": 6e-10}, "info", NANOSECOND))
@example(
    post=(
        {"site": "t", "log_message": "x", "timestamp": 1604514063.123456789},
        "info",
        Decimal(repr(1604514063.123456789)),
    )
)
@example(post=({"site": "t", "log_message": "x", "timestamp": " 1500. "}, "info", Decimal(1500)))
@example(
    post=(
        {"site": "t", "log_message": "x", "timestamp": "0.1234567891234"},
        "info",
        Decimal("0.123456789"),
    )
)
def test_accepted_messages_round_trip_through_recent_logs_and_the_broadcast_frame(
    dynamodb: Any, management_api: FakeManagementApi, post: tuple[dict[str, Any], str, Any]
) -> None:
    clean(dynamodb, management_api)
    fields, stored_level, stored_seconds = post
    before = time.time()
    status, answer = call(with_body("http_post_newlog", fields))
    after = time.time()
    assert status == 200, answer
    assert_round_trip(
        fields, stored_level, stored_seconds, answer, dynamodb, management_api, (before, after)
    )


@shared_fixtures
@given(fields=any_post_fields())
@example(fields={"site": "tst", "log_message": "x", "timestamp": MAX_TIMESTAMP + 1})
@example(fields={"site": "tst", "log_message": "x", "timestamp": 1e-10})
@example(fields={"site": "tst", "log_message": "x", "timestamp": float("nan")})
@example(fields={"site": "tst", "log_message": "x", "timestamp": float("-inf")})
@example(fields={"site": "tst", "log_message": "x", "timestamp": " 1e400 "})
@example(fields={"site": "tst", "log_message": "x", "timestamp": " 1.5e3 "})
@example(fields={"site": "tst", "log_message": "x", "timestamp": False})
@example(fields={"site": "tst", "log_message": "\udfff"})
@example(fields={"site": "tst\n", "log_message": "x"})
@example(fields={"site": ["tst"], "log_message": "x"})
@example(fields={"site": "tst", "log_message": "x", "log_level": "info\x00"})
def test_any_object_is_stored_whole_or_refused_naming_a_field_with_nothing_written(
    dynamodb: Any, management_api: FakeManagementApi, fields: dict[str, Any]
) -> None:
    clean(dynamodb, management_api)
    status, answer = call(with_body("http_post_newlog", json.dumps(fields)))
    if status != 200:
        assert_refused(status, answer, dynamodb)
        assert answer["field"] in FIELDS
        return
    [item] = dynamodb.scan(TableName=MESSAGES)["Items"]
    assert answer["message"] == item["message"]["S"] == fields["log_message"]
    assert answer["site"] == fields["site"]
    assert answer["log_level"] in LEVELS


@shared_fixtures
@given(body=raw_bodies, base64_encoded=st.booleans())
@example(body='{"\\ud800": 1, "\\ud800": 2}', base64_encoded=False)
@example(body='{"site": "a", "site": "b", "log_message": "x"}', base64_encoded=False)
@example(body=_nested(100_000 // 6, "{"), base64_encoded=False)
def test_any_text_body_is_answered_in_json_and_refusals_write_nothing(
    dynamodb: Any, body: str, base64_encoded: bool
) -> None:
    clean(dynamodb)
    event = with_body("http_post_newlog", body)
    if base64_encoded:
        encoded = body.encode("utf-8", "surrogatepass")
        event["body"] = base64.b64encode(encoded).decode()
        event["isBase64Encoded"] = True
    status, answer = call(event)
    if status != 200:
        assert_refused(status, answer, dynamodb)
    else:
        assert len(dynamodb.scan(TableName=MESSAGES)["Items"]) == 1


@shared_fixtures
@given(raw=st.binary(max_size=300))
def test_random_bytes_bodies_are_refused_and_write_nothing(dynamodb: Any, raw: bytes) -> None:
    clean(dynamodb)
    event = with_body("http_post_newlog", base64.b64encode(raw).decode())
    event["isBase64Encoded"] = True
    status, answer = call(event)
    assert_refused(status, answer, dynamodb)
    assert answer["field"] == "body"


query_values = st.one_of(
    st.text(any_char, max_size=12),
    st.integers(-5, 1100).map(str),
    st.sampled_from(["²", "٣", "\uff15", "0010", " 5", "+5", "1e3", "1.0", "", "0", " 0 ", "NaN"]),
)


@shared_fixtures
@given(site=valid_site | any_text, after_time=query_values, limit=query_values)
@example(site="tst", after_time="0", limit="²")
@example(site="tst", after_time="1e-99999999999", limit="1")
def test_any_recent_logs_query_is_answered_200_or_400_naming_the_parameter(
    site: str, after_time: str, limit: str
) -> None:
    query = {"site": site, "after_time": after_time, "limit": limit}
    status, answer = call(with_query("http_get_recent_logs", query))
    if status == 200:
        assert answer == []
    else:
        assert status == 400
        assert answer["field"] in {"site", "after_time", "limit"}
