"""The declared event schema: what passes, and what a producer is told when it does not."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamagg_engine.errors import MalformedRecordError
from streamagg_events.schema import event_schema, validate

from .support import document

SCHEMA = event_schema(("exposure", "click", "purchase"))


def test_a_valid_event_is_read_with_exact_values() -> None:
    event = validate(document(value=Decimal("0.1"), properties={"page": "/cart"}), SCHEMA)
    assert event.event_id == "ev-1"
    assert event.timestamp_ms == 1_769_902_200_000
    assert event.value == Decimal("0.1")
    assert event.properties == {"page": "/cart"}


def test_iso_and_epoch_millisecond_timestamps_are_the_same_instant() -> None:
    iso = validate(document(timestamp="2026-01-31T23:30:00.250+00:00"), SCHEMA)
    millis = validate(document(timestamp=1_769_902_200_250), SCHEMA)
    assert iso.timestamp_ms == millis.timestamp_ms


def test_value_and_properties_are_optional() -> None:
    event = validate(document(value=None), SCHEMA)
    assert event.value == 0
    assert event.properties == {}


@pytest.mark.parametrize(("change", "message"), [
    ({"event_id": None}, "event_id: required"),
    ({"event_id": 12}, "event_id: must be a string, got int"),
    ({"event_id": "has space"}, "event_id: must be 1-128 letters"),
    ({"event_type": "refund"}, "event_type: 'refund' is not one of exposure, click, purchase"),
    ({"timestamp": "yesterday"}, "timestamp: 'yesterday' is not an ISO 8601 time"),
    ({"timestamp": "2026-01-31T23:30:00"}, "timestamp: ISO 8601 time needs a zone"),
    ({"timestamp": 5}, "timestamp: must be between 2000 and 2100"),
    ({"value": "12"}, "value: must be a number"),
    ({"value": True}, "value: must be a number"),
    ({"value": Decimal("1.0000001")}, "value: must have at most 6 decimal places"),
    ({"value": 10**13}, "value: must be finite and below 10^12"),
    ({"properties": [1]}, "properties: must be an object"),
])
def test_each_violation_names_its_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedRecordError) as caught:
        validate(document(**change), SCHEMA)
    assert caught.value.reason.startswith("schema: ")
    assert message in caught.value.reason


def test_every_violated_field_is_reported_at_once() -> None:
    with pytest.raises(MalformedRecordError) as caught:
        validate({"event_id": "x", "value": "a"}, SCHEMA)
    assert caught.value.reason == (
        "schema: event_type: required; user_id: required; experiment_id: required; "
        "timestamp: required; value: must be a number")


def test_a_document_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(MalformedRecordError, match="event must be a JSON object, got list"):
        validate([1, 2], SCHEMA)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=10)


@given(st.dictionaries(st.sampled_from(["event_id", "event_type", "user_id", "experiment_id",
                                        "timestamp", "value", "properties", "other"]), _json))
def test_any_json_object_is_an_event_or_a_reasoned_refusal(doc: dict[str, Any]) -> None:
    outcome: object
    try:
        outcome = validate(doc, SCHEMA).event_id
    except MalformedRecordError as exc:
        outcome = exc.reason
    assert outcome == doc.get("event_id") or str(outcome).startswith("schema: ")


@given(st.decimals(min_value=-10**11, max_value=10**11, places=6, allow_nan=False))
def test_values_survive_the_wire_exactly(value: Decimal) -> None:
    text = json.dumps({"v": str(value)}).replace('"' + str(value) + '"', str(value))
    parsed = json.loads(text, parse_float=Decimal)["v"]
    assert validate(document(value=parsed), SCHEMA).value == value
