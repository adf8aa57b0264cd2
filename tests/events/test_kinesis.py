"""Kinesis record envelopes and payloads, and positions that sort like sequence numbers."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamagg_engine.errors import MalformedRecordError
from streamagg_events.kinesis import decode_document, parse_record, position

from .support import raw_record, record


def test_a_lambda_kinesis_record_is_read() -> None:
    parsed = parse_record(record({"a": 1}, 4959))
    assert parsed.sequence_number == "4959"
    assert parsed.event_id == "shardId-000000000000:4959"
    assert parsed.partition_key == "alice"
    assert parsed.shard_id == "shardId-000000000000"
    assert decode_document(parsed) == {"a": 1}


@pytest.mark.parametrize(("raw", "reason"), [
    ({"eventID": "x"}, "not a Kinesis record"),
    ({"kinesis": {"data": "e30="}}, "kinesis.sequenceNumber is missing"),
    ({"kinesis": {"sequenceNumber": "1"}}, "kinesis.data is missing"),
    ({"kinesis": {"sequenceNumber": "12a", "data": "e30="}}, "is not decimal"),
])
def test_a_broken_envelope_is_refused_with_its_reason(raw: object, reason: str) -> None:
    with pytest.raises(MalformedRecordError, match=reason):
        parse_record(raw)


@pytest.mark.parametrize(("payload", "reason"), [
    ("!!not base64!!", "not valid base64"),
    (base64.b64encode(b"\xff\xfe").decode(), "not UTF-8"),
    (base64.b64encode(b'{"a": ').decode(), "not JSON"),
    (base64.b64encode(b'{"a": NaN}').decode(), "NaN is not a JSON number"),
])
def test_a_bad_payload_is_refused_with_its_reason(payload: str, reason: str) -> None:
    with pytest.raises(MalformedRecordError, match=reason):
        decode_document(parse_record(record(payload, 1)))


def test_json_numbers_are_exact_decimals() -> None:
    document = decode_document(parse_record(raw_record(b'{"v": 0.1, "n": 3}', 1)))
    assert str(document["v"]) == "0.1"
    assert document["n"] == 3


@given(st.lists(st.integers(min_value=0, max_value=10**128), min_size=2, max_size=20))
def test_positions_sort_as_the_numbers_do(numbers: list[int]) -> None:
    by_position = sorted(numbers, key=lambda n: position(str(n)))
    assert by_position == sorted(numbers)
