import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamagg_engine.ddb_json import get_integer, get_string, to_plain
from streamagg_engine.errors import MalformedRecordError


def test_all_scalar_and_container_types_become_plain_json_values() -> None:
    image = {
        "s": {"S": "x"}, "n": {"N": "42"}, "f": {"N": "-1.5"}, "b": {"BOOL": True},
        "z": {"NULL": True}, "m": {"M": {"k": {"L": [{"N": "1"}, {"S": "two"}]}}},
        "ss": {"SS": ["b", "a"]}, "ns": {"NS": ["3", "1"]},
        "bin": {"B": base64.b64encode(b"\x00\x01").decode()},
        "bs": {"BS": ["AQ==", "AA=="]},
    }
    assert to_plain(image) == {
        "s": "x", "n": 42, "f": -1.5, "b": True, "z": None, "m": {"k": [1, "two"]},
        "ss": ["a", "b"], "ns": [1, 3], "bin": "AAE=", "bs": ["AA==", "AQ=="],
    }


@pytest.mark.parametrize(("value", "reason"), [
    ({"S": "a", "N": "1"}, "one type descriptor"),
    ({}, "one type descriptor"),
    ({"X": "1"}, "unknown type descriptor"),
    ({"N": ""}, "not a DynamoDB number"),
    ({"N": "abc"}, "not a DynamoDB number"),
    ({"N": "1" * 39}, "38 significant digits"),
    ({"N": "1E+127"}, "outside DynamoDB's number range"),
    ({"B": "not base64!"}, "not valid base64"),
    ({"S": "\ud800"}, "not valid Unicode"),
    ({"SS": []}, "set is empty"),
    ({"NULL": False}, "NULL value must be true"),
    ({"M": []}, "M value is not a map"),
])
def test_invalid_values_are_rejected_with_a_reason(value: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedRecordError, match=reason):
        to_plain({"a": value})


def test_the_largest_numbers_dynamodb_holds_are_accepted_exactly() -> None:
    assert to_plain({"a": {"N": "9" * 38}}) == {"a": int("9" * 38)}
    assert to_plain({"a": {"N": "1E+125"}}) == {"a": 1e125}


def test_fast_readers_return_none_for_absent_attributes() -> None:
    assert get_string({}, "a") is None
    assert get_integer({}, "a") is None


@given(st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1))
def test_integers_round_trip_exactly(value: int) -> None:
    assert get_integer({"a": {"N": str(value)}}, "a") == value
    assert to_plain({"a": {"N": str(value)}}) == {"a": value}


@pytest.mark.parametrize("text", ["1.5", "1_000", " 1", "1e3", "", "0x10"])
def test_counters_must_be_whole_numbers(text: str) -> None:
    with pytest.raises(MalformedRecordError):
        get_integer({"a": {"N": text}}, "a")


def test_a_string_reader_rejects_another_type() -> None:
    with pytest.raises(MalformedRecordError, match="not a DynamoDB string"):
        get_string({"a": {"N": "1"}}, "a")
