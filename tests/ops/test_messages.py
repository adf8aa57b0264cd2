"""Lambda's on-failure messages, parsed."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from redrive.errors import NotOnFailureMessageError
from redrive.events import filter_view
from redrive.messages import STREAM_RETENTION, age, parse_on_failure
from redrive.stream import RecordFilter

STREAM = "arn:aws:dynamodb:eu-west-1:123456789012:table/rate-limits/stream/2026-05-01T00:00:00.000"


def on_failure(**info: Any) -> dict[str, Any]:
    """A message as Lambda sends it for a DynamoDB stream batch."""
    return {
        "requestContext": {"requestId": "r-1", "condition": "RetryAttemptsExhausted",
                           "approximateInvokeCount": 11,
                           "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:f"},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-05-04T10:00:05.123Z",
        "DDBStreamBatchInfo": {
            "shardId": "shardId-00000001746000000000-abcdef12",
            "startSequenceNumber": "400000000012345678901",
            "endSequenceNumber": "400000000012345678999",
            "approximateArrivalOfFirstRecord": "2026-05-04T09:59:58Z",
            "approximateArrivalOfLastRecord": "2026-05-04T09:59:59Z",
            "batchSize": 57,
            "streamArn": STREAM,
            **info,
        },
    }


def test_a_lambda_on_failure_message_becomes_a_failed_range() -> None:
    failed = parse_on_failure("m-1", "rh-1", json.dumps(on_failure()))
    assert (failed.message_id, failed.receipt_handle) == ("m-1", "rh-1")
    assert failed.stream_arn == STREAM
    assert failed.shard_id == "shardId-00000001746000000000-abcdef12"
    assert (failed.start, failed.end, failed.batch_size) == (
        "400000000012345678901", "400000000012345678999", 57)
    assert failed.first_arrival == datetime(2026, 5, 4, 9, 59, 58, tzinfo=UTC)
    assert failed.last_arrival == datetime(2026, 5, 4, 9, 59, 59, tzinfo=UTC)
    assert (failed.condition, failed.invocations) == ("RetryAttemptsExhausted", 11)
    assert failed.failed_at == datetime(2026, 5, 4, 10, 0, 5, 123000, tzinfo=UTC)
    assert failed.expires_at() == failed.first_arrival + STREAM_RETENTION
    assert failed.contains("400000000012345678950")
    assert not failed.contains("400000000012345679000")
    assert failed.arrivals() == "2026-05-04T09:59:58Z to 2026-05-04T09:59:59Z"


def test_ranges_order_by_position_as_numbers_not_text() -> None:
    short = parse_on_failure("a", "a", json.dumps(on_failure(
        startSequenceNumber="99", endSequenceNumber="120")))
    long = parse_on_failure("b", "b", json.dumps(on_failure(
        startSequenceNumber="100", endSequenceNumber="130")))
    assert sorted([long, short], key=lambda f: f.order) == [short, long]


@pytest.mark.parametrize(("body", "problem"), [
    ("not json", "not JSON"),
    (json.dumps({"Records": []}), "no DDBStreamBatchInfo"),
    (json.dumps(on_failure(shardId="")), "shardId is missing"),
    (json.dumps(on_failure(startSequenceNumber=12)), "startSequenceNumber is missing"),
    (json.dumps(on_failure(endSequenceNumber="12a")), "is not a sequence number"),
    (json.dumps(on_failure(startSequenceNumber="9", endSequenceNumber="8")), "reversed"),
])
def test_anything_else_is_refused_with_the_reason(body: str, problem: str) -> None:
    with pytest.raises(NotOnFailureMessageError, match=problem):
        parse_on_failure("m", "r", body)


def test_missing_optional_fields_are_unknown_not_errors() -> None:
    message = on_failure()
    for name in ("approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord",
                 "batchSize"):
        del message["DDBStreamBatchInfo"][name]
    del message["requestContext"]
    failed = parse_on_failure("m", "r", json.dumps(message))
    assert (failed.first_arrival, failed.batch_size, failed.condition) == (None, 0, "unknown")
    assert failed.expires_at() is None
    assert failed.arrivals() == "unknown"


def test_age_reads_like_a_person_wrote_it() -> None:
    now = datetime(2026, 5, 5, 12, 0, tzinfo=UTC)
    assert age(datetime(2026, 5, 4, 9, 55, tzinfo=UTC), now) == "26 h 5 min ago"
    assert age(datetime(2026, 5, 5, 11, 58, tzinfo=UTC), now) == "2 min ago"
    assert age(datetime(2026, 5, 1, 10, 0, tzinfo=UTC), now) == "4 d 2 h ago"
    assert age(None, now) == "time unknown"


def test_a_kinesis_on_failure_message_becomes_a_failed_range_of_a_kinesis_stream() -> None:
    document = on_failure(streamArn="arn:aws:kinesis:us-east-1:123456789012:stream/clicks",
                          shardId="shardId-000000000002", startSequenceNumber="4960",
                          endSequenceNumber="4970")
    document["KinesisBatchInfo"] = document.pop("DDBStreamBatchInfo")
    failed = parse_on_failure("m-1", "r-1", json.dumps(document))
    assert (failed.source, failed.shard_id, failed.start, failed.end) == (
        "kinesis", "shardId-000000000002", "4960", "4970")
    assert parse_on_failure("m-2", "r-2", json.dumps(on_failure())).source == "dynamodb"


def test_a_kinesis_records_filter_sees_its_data_as_json() -> None:
    pattern = {"data": {"event_type": ["click"]}}
    record_filter = RecordFilter([pattern])

    def record(data: bytes) -> dict[str, Any]:
        return {"kinesis": {"data": base64.b64encode(data).decode(), "sequenceNumber": "1"}}

    assert record_filter.matches(filter_view(record(b'{"event_type": "click"}')))
    assert not record_filter.matches(filter_view(record(b'{"event_type": "view"}')))
    assert not record_filter.matches(filter_view(record(b"not json")))
