from typing import Any

import pytest

from streamagg_engine.errors import MalformedRecordError
from streamagg_engine.records import parse_record
from tests.factories import bucket_record


def test_sequence_numbers_are_padded_so_string_order_is_stream_order() -> None:
    short = parse_record(bucket_record("MODIFY", {"a": 0}, {"a": 1}, sequence="99"))
    long = parse_record(bucket_record("MODIFY", {"a": 0}, {"a": 1}, sequence="100"))
    assert len(short.position) == 40
    assert short.position < long.position


def test_creation_time_in_seconds_or_milliseconds_gives_the_same_instant() -> None:
    seconds = parse_record(bucket_record("MODIFY", {"a": 0}, {"a": 1}, created=1_700_000_000.5))
    millis = parse_record(bucket_record("MODIFY", {"a": 0}, {"a": 1}, created=1_700_000_000_500))
    assert seconds.created_ms == millis.created_ms == 1_700_000_000_500


def test_namespace_is_split_off_the_partition_key() -> None:
    record = parse_record(bucket_record("MODIFY", {"a": 0}, {"a": 1}))
    ns, rest = record.namespace_and_rest
    assert rest.startswith("BUCKET#user-1#gpt-4#")
    assert ns


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda r: r.pop("eventID"), "eventID"),
    (lambda r: r.update(eventName="UPSERT"), "unknown eventName"),
    (lambda r: r["dynamodb"].pop("SequenceNumber"), "SequenceNumber"),
    (lambda r: r["dynamodb"].update(SequenceNumber="12a"), "SequenceNumber"),
    (lambda r: r["dynamodb"].update(SequenceNumber="1" * 41), "SequenceNumber"),
    (lambda r: r["dynamodb"].update(ApproximateCreationDateTime="yesterday"),
     "ApproximateCreationDateTime"),
    (lambda r: r["dynamodb"].update(ApproximateCreationDateTime=float("inf")),
     "ApproximateCreationDateTime"),
    (lambda r: r["dynamodb"].pop("Keys"), "Keys"),
    (lambda r: r["dynamodb"].update(Keys={"PK": {"N": "1"}}), "PK"),
    (lambda r: r.pop("dynamodb"), "dynamodb"),
])
def test_broken_records_are_rejected_with_a_reason(mutate: Any, reason: str) -> None:
    raw = bucket_record("MODIFY", {"a": 0}, {"a": 1})
    mutate(raw)
    with pytest.raises(MalformedRecordError, match=reason):
        parse_record(raw)
