"""The OpenAPI file's numeric-string patterns accept exactly the strings the server accepts.

A pattern that allowed more (``+.97e45073``, ``7e-9168462729``: the old ones did) makes
schema-driven clients and fuzzers send requests the server refuses; one that allowed less would
hide accepted input. Strings are drawn around every edge: white space of every kind, signs,
leading zeros, the nanosecond rounding boundary, the 253402300799 maximum, exponents, other
digits, the 64-character limit, and strings the pattern itself generates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from userstatus import http_api
from userstatus.errors import InvalidInput
from userstatus.model import MAX_TIMESTAMP, parse_seconds

SPEC: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text()
)
_NEW_LOG = SPEC["components"]["schemas"]["NewLogRequest"]["properties"]
TIMESTAMP_TEXT = next(s for s in _NEW_LOG["timestamp"]["oneOf"] if s.get("type") == "string")
[_AFTER_TIME] = [
    p for p in SPEC["paths"]["/recent-logs"]["get"]["parameters"] if p.get("name") == "after_time"
]
AFTER_TIME_TEXT = _AFTER_TIME["schema"]


def schema_accepts(schema: dict[str, Any], text: str) -> bool:
    return len(text) <= schema["maxLength"] and re.search(schema["pattern"], text) is not None


def server_accepts_timestamp(text: str) -> bool:
    try:
        parse_seconds(text, "timestamp")
    except InvalidInput:
        return False
    return True


def server_accepts_after_time(text: str) -> bool:
    try:
        http_api._after_time(text)
    except InvalidInput:
        return False
    return True


white_space = st.text(st.sampled_from(" \t\n\r\f\v\u00a0\u2028"), max_size=3)
integer_parts = st.sampled_from(
    [
        "",
        "0",
        "00",
        "1",
        "5",
        "1604514063",
        "0001604514063",
        str(MAX_TIMESTAMP - 1),
        str(MAX_TIMESTAMP),
        str(MAX_TIMESTAMP + 1),
        "99999999999",
        "100000000000",
        "999999999999",
        "1604514063000",
        "١٢٣",
        "1_000",
    ]
) | st.integers(0, 10**13).map(str)
fraction_parts = st.sampled_from(
    [
        "",
        ".",
        ".0",
        ".000",
        ".5",
        ".000000001",
        ".0000000005",
        ".00000000050",
        ".00000000051",
        ".0000000006",
        ".0000000004999",
        ".123456789123",
        "." + "0" * 60,
    ]
) | st.integers(0, 10**12).map(lambda n: f".{n}")
exponents = st.sampled_from(["", "", "", "e3", "E-10", "e+2", "e45073", "e-9168462729"])
texts = st.builds(
    lambda lead, sign, whole, fraction, exponent, trail: (
        lead + sign + whole + fraction + exponent + trail
    ),
    white_space,
    st.sampled_from(["", "", "+", "-"]),
    integer_parts,
    fraction_parts,
    exponents,
    white_space,
)


@settings(max_examples=1000, derandomize=True, database=None)
@given(text=texts | st.from_regex(TIMESTAMP_TEXT["pattern"]))
@example(text="+.97e45073")
@example(text="7e-9168462729")
@example(text=str(MAX_TIMESTAMP) + "." + "0" * 52)
@example(text=str(MAX_TIMESTAMP) + "." + "0" * 53)
def test_the_timestamp_pattern_accepts_exactly_what_the_server_does(text: str) -> None:
    assert schema_accepts(TIMESTAMP_TEXT, text) == server_accepts_timestamp(text), repr(text)


@settings(max_examples=1000, derandomize=True, database=None)
@given(text=texts | st.from_regex(AFTER_TIME_TEXT["pattern"]))
@example(text=" 0 ")
@example(text="0.0")
@example(text="+0")
@example(text="00")
@example(text="\f0")
@example(text="0" + " " * 64)
def test_the_after_time_pattern_accepts_exactly_what_the_server_does(text: str) -> None:
    documented = schema_accepts(AFTER_TIME_TEXT, text) or (
        text == "" and _AFTER_TIME["allowEmptyValue"]
    )
    assert documented == server_accepts_after_time(text), repr(text)
