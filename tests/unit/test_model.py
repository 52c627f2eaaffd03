"""Validation and wire shapes of the message model (pure, no AWS)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from userstatus.errors import InvalidInput, PayloadTooLarge
from userstatus.model import (
    MAX_MESSAGE_BYTES,
    Message,
    decimal_to_number,
    number_from_text,
    parse_json_object,
    parse_seconds,
    sort_key_after,
    validate_message,
)

NOW = 1_700_000_000.25


def valid(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"site": "tst", "log_message": "Slewing telescope..."}
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not ...}


def rejected_field(fields: dict[str, Any]) -> str:
    with pytest.raises(InvalidInput) as caught:
        validate_message(fields, received_at=NOW)
    assert caught.value.field in caught.value.message
    return caught.value.field


def test_defaults_are_info_and_time_of_receipt() -> None:
    message = validate_message(valid(), received_at=NOW)
    assert message.log_level == "info"
    assert message.timestamp == Decimal("1700000000.25")


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("DEBUG", "debug"),
        ("Info", "info"),
        ("warn", "warning"),
        ("WARNING", "warning"),
        ("error", "error"),
        ("fatal", "critical"),
        ("Critical", "critical"),
        (None, "info"),
    ],
)
def test_levels_any_case_and_python_aliases(given: str | None, stored: str) -> None:
    assert validate_message(valid(log_level=given), received_at=NOW).log_level == stored


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (1604514063, Decimal(1604514063)),
        (1604514063.5, Decimal("1604514063.5")),
        ("1604514063", Decimal(1604514063)),
        (" 1604514063.25 ", Decimal("1604514063.25")),
        (1.604514063e9, Decimal(1604514063)),
        ("+1604514063.", Decimal(1604514063)),
        (".5", Decimal("0.5")),
        (1604514063.1234567, Decimal("1604514063.1234567")),
    ],
)
def test_timestamp_int_float_or_numeric_string(given: object, stored: Decimal) -> None:
    assert validate_message(valid(timestamp=given), received_at=NOW).timestamp == stored


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"log_message": "x"}, "site"),
        (valid(site=""), "site"),
        (valid(site=None), "site"),
        (valid(site=12), "site"),
        (valid(site="t st"), "site"),
        (valid(site="x" * 65), "site"),
        (valid(site="sïte"), "site"),
        (valid(site="tst\n"), "site"),
        (valid(log_message=...), "log_message"),
        (valid(log_message=""), "log_message"),
        (valid(log_message=None), "log_message"),
        (valid(log_message=5), "log_message"),
        (valid(log_message=["a"]), "log_message"),
        (valid(log_message="x" * (MAX_MESSAGE_BYTES + 1)), "log_message"),
        (valid(log_message="é" * (MAX_MESSAGE_BYTES // 2 + 1)), "log_message"),
        (valid(log_message="\ud800"), "log_message"),
        (valid(log_level="verbose"), "log_level"),
        (valid(log_level=3), "log_level"),
        (valid(timestamp="NaN"), "timestamp"),
        (valid(timestamp=float("nan")), "timestamp"),
        (valid(timestamp=float("inf")), "timestamp"),
        (valid(timestamp="-Infinity"), "timestamp"),
        (valid(timestamp=-5), "timestamp"),
        (valid(timestamp=0), "timestamp"),
        (valid(timestamp="soon"), "timestamp"),
        (valid(timestamp=""), "timestamp"),
        (valid(timestamp=True), "timestamp"),
        (valid(timestamp=[1]), "timestamp"),
        (valid(timestamp=1604514063000), "timestamp"),
        (valid(timestamp="1e-12"), "timestamp"),
        # As text: a plain decimal, so that the OpenAPI pattern can say exactly what passes.
        (valid(timestamp="1.604514063e9"), "timestamp"),
        (valid(timestamp="+.97e45073"), "timestamp"),
        (valid(timestamp="7e-9168462729"), "timestamp"),
        (valid(timestamp="1_604_514_063"), "timestamp"),
        (valid(timestamp="١٦٠٤٥١٤٠٦٣"), "timestamp"),
        (valid(timestamp="\f1604514063"), "timestamp"),
        (valid(timestamp="1604514063." + "0" * 54), "timestamp"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, Any], field: str) -> None:
    assert rejected_field(fields) == field


def test_message_of_exactly_16_kib_is_accepted() -> None:
    text = "é" * (MAX_MESSAGE_BYTES // 2)
    assert validate_message(valid(log_message=text), received_at=NOW).message == text


def test_unknown_fields_are_ignored() -> None:
    message = validate_message(valid(color="red", nested={"a": 1}), received_at=NOW)
    assert message.message == "Slewing telescope..."


def test_excess_precision_is_rounded_to_nanoseconds() -> None:
    assert parse_seconds("1604514063.1234567891234", "t") == Decimal("1604514063.123456789")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"", "body"),
        (b"not json", "body"),
        (b"[1, 2]", "body"),
        (b'"text"', "body"),
        (b"null", "body"),
        (b"\xff\xfe", "body"),
        (b'{"site": "a", "site": "b"}', "site"),
        (b'{"\\ud800": 1, "\\ud800": 2}', "\\ud800"),
        (b"[" * 100_000 + b"]" * 100_000, "body"),
    ],
)
def test_body_must_be_one_json_object(raw: bytes, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_json_object(raw)
    assert caught.value.field == field


def test_oversize_body_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_json_object(b'{"log_message": "' + b"x" * 200_000 + b'"}')


def test_broadcast_frame_has_exactly_the_frontend_shape() -> None:
    message = Message("tst", "Dome ☂ open", "warning", Decimal("1604514063.75"), "ab")
    assert json.loads(message.broadcast_frame()) == {
        "site": "tst",
        "message": "Dome ☂ open",
        "log_level": "warning",
        "timestamp": "1604514063",
    }


def test_wire_timestamp_is_the_number_posted() -> None:
    assert Message("s", "m", "info", Decimal("1604514063.5"), "x").to_wire()["timestamp"] == (
        1604514063.5
    )
    whole = Message("s", "m", "info", Decimal(1604514063), "x").to_wire()["timestamp"]
    assert whole == 1604514063
    assert isinstance(whole, int)


def test_sort_keys_order_by_time_and_differ_within_a_second() -> None:
    early = Message("s", "m", "info", Decimal("99.5"), "b" * 32)
    late = Message("s", "m", "info", Decimal("1604514063"), "a" * 32)
    twin = Message("s", "m", "info", Decimal("1604514063"), "c" * 32)
    assert early.sort_key < late.sort_key < twin.sort_key
    assert sort_key_after(Decimal(1604514063)) > twin.sort_key
    assert sort_key_after(Decimal("1604514062.999999999")) < late.sort_key
    tiny = Message("s", "m", "info", Decimal("1E-9"), "d" * 32)
    assert sort_key_after(Decimal(0)) < tiny.sort_key


@pytest.mark.parametrize(
    "text", ["1604514063", "1604514063.5", "1604514063.123456789", "1E-9", "5E+2", "0.25", "-3"]
)
def test_stored_numbers_read_back_like_decimal_does(text: str) -> None:
    fast = number_from_text(text)
    exact = decimal_to_number(Decimal(text))
    assert (fast, type(fast)) == (exact, type(exact))
