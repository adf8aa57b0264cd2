"""Reading a failed range back from the stream: exact ranges, expiry, Lambda's record shape."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from aggregator.config import AggregatorConfig
from infra.filters import default_filters
from local_aws.event_source_mapping import LocalEventSourceMapping, MappingSettings
from redrive.errors import StreamReadError, UnsupportedFilterError
from redrive.messages import FailedRange
from redrive.stream import RecordFilter, lambda_record, read_range
from tests.moto_fixtures import LocalAws

from .support import Traffic

STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"
SHARD = "shardId-00000001746000000000-abcdef12"


def seq(offset: int) -> str:
    """A sequence number as long as real ones (21 digits or more)."""
    return str(400_000_000_000_000_000_000 + offset)


def failed_range(start: str, end: str, *, stream: str = STREAM, shard: str = SHARD,
                 batch_size: int = 3) -> FailedRange:
    return FailedRange(
        message_id="m", receipt_handle="r", stream_arn=stream, shard_id=shard, start=start,
        end=end, batch_size=batch_size, first_arrival=datetime(2026, 1, 1, tzinfo=UTC),
        last_arrival=datetime(2026, 1, 1, 0, 1, tzinfo=UTC), condition="RetryAttemptsExhausted",
        invocations=3, failed_at=None,
    )


def get_records_record(sequence: str, *, event: str = "MODIFY", **extra: Any) -> dict[str, Any]:
    """A record as boto3's GetRecords returns it (a datetime, maybe bytes)."""
    return {
        "eventID": f"e{sequence}", "eventName": event, "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
                     "Keys": {"PK": {"S": "ns/BUCKET#a"}, "SK": {"S": "#STATE"}},
                     "SequenceNumber": sequence, "SizeBytes": 10,
                     "StreamViewType": "NEW_AND_OLD_IMAGES", **extra},
    }


def streams_client() -> Any:
    return boto3.client("dynamodbstreams", region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


# --- Lambda's record shape -----------------------------------------------------------

def test_a_get_records_record_gets_lambdas_shape() -> None:
    raw = get_records_record("100", NewImage={"blob": {"B": b"\x00\xff"}},
                             OldImage={"n": {"N": "1"}})
    converted = lambda_record(raw, stream_arn=STREAM, region="eu-west-1")
    assert converted["eventSourceARN"] == STREAM
    assert converted["eventSource"] == "aws:dynamodb"
    assert converted["awsRegion"] == "us-east-1"  # the record's own region wins
    body = converted["dynamodb"]
    assert body["ApproximateCreationDateTime"] == datetime(2026, 1, 1, 0, 0, 5,
                                                           tzinfo=UTC).timestamp()
    assert body["NewImage"]["blob"]["B"] == base64.b64encode(b"\x00\xff").decode()
    assert body["OldImage"] == {"n": {"N": "1"}}
    assert json.loads(json.dumps(converted)) == converted
    assert "userIdentity" not in converted


def test_a_ttl_deletion_keeps_its_identity() -> None:
    raw = get_records_record("100", event="REMOVE")
    raw["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert lambda_record(raw, stream_arn=STREAM, region="us-east-1")["userIdentity"] == \
        raw["userIdentity"]


def test_the_local_mapping_uses_the_same_conversion_and_adds_emulated_ttl() -> None:
    mapping = LocalEventSourceMapping(
        None, STREAM, lambda event: None, settings=MappingSettings(),
        on_failure=lambda message: None, clock=time.time, ttl_deleted_keys=lambda keys: True)
    raw = get_records_record("100", event="REMOVE")
    converted = mapping.to_lambda_record(raw)
    assert converted["userIdentity"]["principalId"] == "dynamodb.amazonaws.com"
    del converted["userIdentity"]
    assert converted == lambda_record(raw, stream_arn=STREAM, region="us-east-1")


# --- the mapping's filter --------------------------------------------------------------

@pytest.mark.parametrize(("archival", "remove_passes"), [(True, True), (False, False)])
def test_the_constructs_default_filters_are_evaluated(archival: bool,
                                                      remove_passes: bool) -> None:
    config = AggregatorConfig(enable_archival=archival)
    criteria = {"Filters": [{"Pattern": f["pattern"]} for f in default_filters(config)]}
    record_filter = RecordFilter.from_criteria(criteria)
    assert record_filter.matches({"eventName": "INSERT"})
    assert record_filter.matches({"eventName": "MODIFY"})
    assert record_filter.matches({"eventName": "REMOVE"}) is remove_passes


def test_nested_exact_values_match_and_no_filter_lets_everything_through() -> None:
    record_filter = RecordFilter([{"dynamodb": {"Keys": {"SK": {"S": ["#STATE"]}}}},
                                  {"eventName": ["REMOVE"]}])
    assert record_filter.matches(lambda_record(get_records_record("1"), stream_arn=STREAM,
                                               region="us-east-1"))
    assert not record_filter.matches({"eventName": "MODIFY", "dynamodb": {"Keys": {}}})
    assert RecordFilter.from_criteria(None).matches({"anything": 1})
    assert not RecordFilter()


@pytest.mark.parametrize("pattern", [
    {"dynamodb": {"Keys": {"PK": {"S": [{"prefix": "ns/"}]}}}},
    {"eventName": "INSERT"},
])
def test_operators_the_redrive_cannot_evaluate_are_refused(pattern: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedFilterError):
        RecordFilter([pattern])


# --- reading ranges on moto --------------------------------------------------------------

def test_exactly_the_range_is_read_from_the_stream(aws: LocalAws) -> None:
    table, stream = aws.create_table("range")
    traffic = Traffic(aws, table)
    for amount in range(1, 9):
        traffic.acquire("reader", amount)
    shard = aws.streams.describe_stream(StreamArn=stream)["StreamDescription"]["Shards"][0]
    iterator = aws.streams.get_shard_iterator(StreamArn=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    numbers = [r["dynamodb"]["SequenceNumber"]
               for r in aws.streams.get_records(ShardIterator=iterator)["Records"]]
    read = read_range(aws.streams, failed_range(numbers[2], numbers[5], stream=stream,
                                                shard=shard["ShardId"]), region="us-east-1")
    assert read.complete
    assert [r["dynamodb"]["SequenceNumber"] for r in read.records] == numbers[2:6]
    assert all(r["eventSourceARN"] == stream for r in read.records)


# --- what the stream no longer has ------------------------------------------------------------

def test_a_trimmed_range_is_all_lost_when_nothing_of_it_is_left() -> None:
    client = streams_client()
    with Stubber(client) as stub:
        stub.add_client_error("get_shard_iterator", "TrimmedDataAccessException",
                              "beyond the trim horizon")
        stub.add_response("get_shard_iterator", {"ShardIterator": "horizon"},
                          {"StreamArn": STREAM, "ShardId": SHARD,
                           "ShardIteratorType": "TRIM_HORIZON"})
        stub.add_response("get_records", {"Records": [get_records_record(seq(500))],
                                           "NextShardIterator": "next"})
        read = read_range(client, failed_range(seq(100), seq(200)), region="us-east-1")
    assert read.records == []
    assert read.lost_head == read.lost_tail
    assert read.lost_head is not None
    assert "TrimmedDataAccessException" in read.lost_head


def test_a_partly_trimmed_range_keeps_what_is_left() -> None:
    client = streams_client()
    with Stubber(client) as stub:
        stub.add_client_error("get_shard_iterator", "TrimmedDataAccessException", "trimmed")
        stub.add_response("get_shard_iterator", {"ShardIterator": "horizon"})
        stub.add_response("get_records", {
            "Records": [get_records_record(seq(n)) for n in (150, 180, 200, 230)],
            "NextShardIterator": "next"})
        read = read_range(client, failed_range(seq(100), seq(200)), region="us-east-1")
    assert [r["dynamodb"]["SequenceNumber"] for r in read.records] == [
        seq(150), seq(180), seq(200)]
    assert read.lost_head is not None
    assert "trim horizon" in read.lost_head
    assert read.lost_tail is None


def test_a_stream_that_is_gone_loses_the_whole_range() -> None:
    client = streams_client()
    with Stubber(client) as stub:
        stub.add_client_error("get_shard_iterator", "ResourceNotFoundException",
                              "Requested resource not found: Stream not found")
        read = read_range(client, failed_range(seq(100), seq(200)), region="us-east-1")
    assert read.records == []
    assert read.lost_head is not None
    assert "no longer exists" in read.lost_head


def test_an_expired_iterator_is_renewed_after_the_last_record_seen() -> None:
    client = streams_client()
    with Stubber(client) as stub:
        stub.add_response("get_shard_iterator", {"ShardIterator": "at"},
                          {"StreamArn": STREAM, "ShardId": SHARD,
                           "ShardIteratorType": "AT_SEQUENCE_NUMBER",
                           "SequenceNumber": seq(100)})
        stub.add_response("get_records", {"Records": [get_records_record(seq(100))],
                                          "NextShardIterator": "stale"})
        stub.add_client_error("get_records", "ExpiredIteratorException", "expired")
        stub.add_response("get_shard_iterator", {"ShardIterator": "after"},
                          {"StreamArn": STREAM, "ShardId": SHARD,
                           "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                           "SequenceNumber": seq(100)})
        stub.add_response("get_records", {"Records": [get_records_record(seq(150)),
                                                      get_records_record(seq(200))],
                                          "NextShardIterator": "next"})
        read = read_range(client, failed_range(seq(100), seq(200)), region="us-east-1")
        stub.assert_no_pending_responses()
    assert read.complete
    assert [r["dynamodb"]["SequenceNumber"] for r in read.records] == [
        seq(100), seq(150), seq(200)]


def test_records_missing_at_the_end_are_reported_after_bounded_empty_pages() -> None:
    client = streams_client()
    pauses: list[float] = []
    with Stubber(client) as stub:
        stub.add_response("get_shard_iterator", {"ShardIterator": "at"})
        stub.add_response("get_records", {"Records": [get_records_record(seq(100))],
                                          "NextShardIterator": "i"})
        for _ in range(3):
            stub.add_response("get_records", {"Records": [], "NextShardIterator": "i"})
        read = read_range(client, failed_range(seq(100), seq(200)), region="us-east-1",
                          sleep=pauses.append, max_empty_pages=3)
    assert [r["dynamodb"]["SequenceNumber"] for r in read.records] == [seq(100)]
    assert read.lost_head is None
    assert read.lost_tail is not None
    assert f"before the range's last record {seq(200)}" in read.lost_tail
    assert len(pauses) == 2


def test_a_closed_shard_ends_the_read() -> None:
    client = streams_client()
    with Stubber(client) as stub:
        stub.add_response("get_shard_iterator", {"ShardIterator": "at"})
        stub.add_response("get_records", {"Records": [get_records_record(seq(100))]})
        read = read_range(client, failed_range(seq(100), seq(200)), region="us-east-1")
    assert read.lost_tail is not None


def test_other_errors_are_not_mistaken_for_expiry() -> None:
    client = streams_client()
    with Stubber(client) as stub:
        stub.add_client_error("get_shard_iterator", "AccessDeniedException", "no")
        with pytest.raises(StreamReadError, match="AccessDeniedException"):
            read_range(client, failed_range(seq(100), seq(200)), region="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("get_shard_iterator", {"ShardIterator": "at"})
        stub.add_client_error("get_records", "LimitExceededException", "slow down")
        with pytest.raises(StreamReadError, match="LimitExceededException"):
            read_range(client, failed_range(seq(100), seq(200)), region="us-east-1")
