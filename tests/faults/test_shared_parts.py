"""The parts the four proofs share, on their own: one mapping for DynamoDB and Kinesis
records, BatchWriteItem's UnprocessedItems fault, and a crash costing the container."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from local_aws.event_source_mapping import (
    DYNAMODB_STREAMS,
    KINESIS,
    LocalEventSourceMapping,
    MappingSettings,
    RecordShape,
)
from local_aws.events_harness import kinesis_record
from local_aws.faults import FaultPlan, FaultyClient, SimulatedCrash
from local_aws.memory import MemoryDynamoDB, table_definition
from local_aws.proof import InvocationCrashError, LaneContainers
from local_aws.stream_records import lambda_record


def _dynamodb(sequence: int) -> dict[str, Any]:
    return lambda_record("INSERT", keys={"pk": {"S": f"k{sequence}"}}, sequence=str(sequence),
                         created=1_770_000_000.0 + sequence)


def _kinesis(sequence: int) -> dict[str, Any]:
    return kinesis_record("e30=", sequence, f"k{sequence}", 1_770_000_000.0 + sequence)


SHAPES: list[tuple[RecordShape, Callable[[int], dict[str, Any]]]] = [
    (DYNAMODB_STREAMS, _dynamodb), (KINESIS, _kinesis)]


@pytest.mark.parametrize(("shape", "make"), SHAPES, ids=["dynamodb", "kinesis"])
def test_a_reported_record_is_retried_from_and_given_up_with_its_range(
        shape: RecordShape, make: Callable[[int], dict[str, Any]]) -> None:
    records = [make(sequence) for sequence in (101, 102, 103, 104)]
    batches: list[list[str]] = []
    given_up: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any]) -> Mapping[str, Any]:
        batch = [shape.position_of(record) for record in event["Records"]]
        batches.append(batch)
        return {"batchItemFailures": [{"itemIdentifier": "103"}] if "103" in batch else []}

    mapping = LocalEventSourceMapping(
        None, "arn:stream", invoke, settings=MappingSettings(batch_size=4, retry_attempts=2),
        on_failure=given_up.append, clock=lambda: 1_770_000_500.0, shape=shape)
    report = mapping.deliver("shard-1", records)

    assert batches == [["101", "102", "103", "104"], ["103", "104"], ["103", "104"]]
    assert report.records_delivered == 2
    (message,) = given_up
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message[shape.batch_info] == {
        "shardId": "shard-1", "startSequenceNumber": "103", "endSequenceNumber": "104",
        "approximateArrivalOfFirstRecord": "2026-02-02T02:41:43+00:00",
        "approximateArrivalOfLastRecord": "2026-02-02T02:41:44+00:00",
        "batchSize": 2, "streamArn": "arn:stream"}


@pytest.mark.parametrize(("shape", "make"), SHAPES, ids=["dynamodb", "kinesis"])
def test_records_older_than_the_maximum_age_go_to_the_destination_unprocessed(
        shape: RecordShape, make: Callable[[int], dict[str, Any]]) -> None:
    records = [make(sequence) for sequence in (1, 2, 900)]
    processed: list[str] = []
    given_up: list[dict[str, Any]] = []
    mapping = LocalEventSourceMapping(
        None, "arn:stream",
        lambda event: processed.extend(shape.position_of(r) for r in event["Records"]),
        settings=MappingSettings(max_record_age_seconds=60), on_failure=given_up.append,
        clock=lambda: 1_770_000_901.0, shape=shape)
    mapping.deliver("shard-1", records)

    assert processed == ["900"]
    assert [m["requestContext"]["condition"] for m in given_up] == ["RecordAgeExceeded"]
    assert given_up[0][shape.batch_info]["batchSize"] == 2


def test_an_unprocessed_batch_write_lands_exactly_what_it_does_not_hand_back() -> None:
    plan = FaultPlan(random.Random(4), unprocessed_rate=1.0)
    table = MemoryDynamoDB()
    table.create_table(**table_definition("t", "pk"))
    requests = [{"PutRequest": {"Item": {"pk": {"S": f"k{i}"}}}} for i in range(25)]

    response = FaultyClient(table, plan).batch_write_item(RequestItems={"t": requests})

    handed_back = [r["PutRequest"]["Item"]["pk"]["S"]
                   for r in response["UnprocessedItems"].get("t", [])]
    landed = [item["pk"]["S"] for item in table.items("t")]
    assert handed_back  # 25 coin flips: both sides have some
    assert landed
    assert sorted(handed_back + landed) == sorted(f"k{i}" for i in range(25))
    assert plan.counts == {"unprocessed": 1}


@dataclass
class _Runtime:
    pool: ThreadPoolExecutor


def test_a_crash_costs_the_lanes_container_and_reaches_the_mapping_as_an_error() -> None:
    built: list[_Runtime] = []

    def build() -> _Runtime:
        built.append(_Runtime(ThreadPoolExecutor(1)))
        return built[-1]

    def crash(runtime: _Runtime) -> None:
        raise SimulatedCrash("timeout")

    containers = LaneContainers(build)
    assert containers.invoke(lambda runtime: runtime) is containers.invoke(lambda r: r)
    with pytest.raises(InvocationCrashError):
        containers.invoke(crash)
    assert containers.invoke(lambda runtime: runtime) is built[1]

    assert len(built) == 2
    with pytest.raises(RuntimeError):  # the crashed container takes no more work
        built[0].pool.submit(print)
    assert (containers.invocations, containers.crashes) == (4, 1)
