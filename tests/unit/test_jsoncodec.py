"""``overseer.jsoncodec``: orjson where it can, the standard library where orjson refuses, and the
same values either way (what agents send and what the log stores must round-trip)."""

from __future__ import annotations

import enum
import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overseer import jsoncodec

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@given(JSON)
def test_dumps_then_loads_round_trips(value: object) -> None:
    assert jsoncodec.loads(jsoncodec.dumps(value)) == value
    assert jsoncodec.loads(jsoncodec.dumps_bytes(value)) == value
    assert json.loads(jsoncodec.dumps(value)) == value  # what any reader parses


def test_output_is_compact_utf8_with_control_characters_escaped() -> None:
    text = jsoncodec.dumps({"a": [1, "é"], "nul": "x\x00y", "nl": "\n"})
    assert text == '{"a":[1,"é"],"nul":"x\\u0000y","nl":"\\n"}'


def test_what_orjson_refuses_goes_through_the_standard_library() -> None:
    big = 2**70
    assert jsoncodec.dumps({"big": big}) == '{"big":1180591620717411303424}'
    assert jsoncodec.dumps("\ud800") == '"\\ud800"'  # a lone surrogate stays an ASCII escape
    assert jsoncodec.loads('{"n": NaN, "big": 123456789012345678901234567890}')["big"] == 123456789012345678901234567890
    assert jsoncodec.loads('"\\ud800"') == "\ud800"


def test_non_json_values_are_written_as_strings() -> None:
    class Kind(enum.StrEnum):
        A = "a"

    u = uuid.UUID(int=5)
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert json.loads(jsoncodec.dumps({1: u, "t": at, "k": Kind.A, "o": ValueError("boom")})) == {
        "1": str(u), "t": at.isoformat(), "k": "a", "o": "boom"}
    assert jsoncodec.dumps(float("nan")) == "null"  # JSON has no NaN (PostgreSQL JSONB refuses it)


@pytest.mark.parametrize("text", ["", "{", "[1,]", "nul", "{'a': 1}", "\x00"])
def test_malformed_text_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        jsoncodec.loads(text)
