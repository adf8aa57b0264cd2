"""The event-metrics pipeline recovered from its DLQ on moto: a Kinesis batch given up,
newer events counted after it, then ``python -m redrive`` replays the shard range."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from typing import Any

from local_aws.event_source_mapping import KINESIS, LocalEventSourceMapping, MappingSettings
from local_aws.events_harness import compare, generate_workload, kinesis_record
from local_aws.memory import table_definition
from local_aws.server import MotoServer, client
from streamagg_events.config import EventMetricsConfig
from streamagg_events.handler import build_runtime, handle
from tests.moto_fixtures import LocalAws

from .support import create_function, create_queue, queue_messages, run_redrive

BATCH = 6


class EventsDeployment:
    """Stream, tables, bucket, a function for its environment, a DLQ, a local mapping."""

    def __init__(self, moto: MotoServer, name: str, profile: str = "default") -> None:
        url = moto.endpoint_url
        self.url = url
        self.aws = LocalAws(url, client("dynamodb", url), client("dynamodbstreams", url),
                            client("s3", url), client("sqs", url))
        self.kinesis = client("kinesis", url)
        self.kinesis.create_stream(StreamName=name, ShardCount=1)
        self.stream_arn = self.kinesis.describe_stream_summary(
            StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
        self.stream = name
        self.metrics, lookups, self.bucket = f"{name}-metrics", f"{name}-lookups", f"{name}-archive"
        self.keys = EventMetricsConfig(profile=profile).key_attributes
        self.aws.ddb.create_table(**table_definition(self.metrics, *self.keys))
        self.aws.ddb.create_table(**table_definition(lookups, "pk"))
        self.aws.s3.create_bucket(Bucket=self.bucket)
        self.workload = generate_workload(31, 30, users=6)
        for item in self.workload.lookups:
            self.aws.ddb.put_item(TableName=lookups, Item=item)
        config = EventMetricsConfig(profile=profile, metrics_table_name=self.metrics,
                                    lookup_table_name=lookups, archive_bucket_name=self.bucket,
                                    max_workers=1)
        self.function = create_function(self.aws, config.to_env(),
                                        "streamagg_events.handler.handler")
        self.queue = create_queue(self.aws)
        self.runtime = build_runtime(config.to_env(), dynamodb=self.aws.ddb, s3=self.aws.s3)
        self.poisoned: set[str] = set()
        """Sequence numbers whose batches fail every time (a bug only they trigger)."""
        self.mapping = LocalEventSourceMapping(
            None, self.stream_arn, self._invoke, shape=KINESIS, clock=time.time,
            settings=MappingSettings(batch_size=BATCH, retry_attempts=2),
            on_failure=lambda message: self.aws.sqs.send_message(
                QueueUrl=self.queue, MessageBody=json.dumps(message)))
        self._read = 0

    def _invoke(self, event: dict[str, Any]) -> Mapping[str, Any]:
        if any(r["kinesis"]["sequenceNumber"] in self.poisoned for r in event["Records"]):
            raise RuntimeError("KeyError: 'variant' (a bug this batch triggers)")
        return handle(event, self.runtime, now_ms=int(time.time() * 1000))

    def put(self, records: list[dict[str, Any]]) -> None:
        self.kinesis.put_records(StreamName=self.stream, Records=[
            {"Data": _payload(r["kinesis"]["data"]), "PartitionKey": r["kinesis"]["partitionKey"]}
            for r in records])

    def read_new(self) -> tuple[str, list[dict[str, Any]]]:
        """The shard and its records not read yet, Lambda-shaped."""
        shard = self.kinesis.list_shards(StreamName=self.stream)["Shards"][0]["ShardId"]
        iterator = self.kinesis.get_shard_iterator(
            StreamName=self.stream, ShardId=shard,
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        raw = self.kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
        records = [kinesis_record(base64.b64encode(r["Data"]).decode(), int(r["SequenceNumber"]),
                                  r["PartitionKey"], r["ApproximateArrivalTimestamp"].timestamp(),
                                  shard) for r in raw[self._read:]]
        self._read = len(raw)
        for record in records:
            record["eventSourceARN"] = self.stream_arn
        return shard, records

    def differences(self) -> Any:
        items = self.aws.items(self.metrics)
        return compare(self.workload, items, self.aws.objects(self.bucket).values(), self.keys)

    def state(self) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        return self.aws.items(self.metrics), self.aws.objects(self.bucket)


def _payload(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        return data.encode()


def test_a_given_up_kinesis_batch_is_replayed_exactly_once_after_newer_events(
        moto: MotoServer) -> None:
    deployment = EventsDeployment(moto, "redrive-events")
    records = deployment.workload.records
    half = len(records) // 2
    deployment.put(records[:half])
    # The mapping gives the second batch up (retries exhausted, bisected), then goes on.
    shard, first = deployment.read_new()
    deployment.poisoned = {r["kinesis"]["sequenceNumber"] for r in first[BATCH:2 * BATCH]}
    deployment.mapping.deliver(shard, first)
    deployment.poisoned = set()
    deployment.put(records[half:])  # newer events of the same experiments and windows
    deployment.mapping.deliver(*deployment.read_new())
    messages = queue_messages(deployment.aws, deployment.queue)
    assert messages
    assert all("KinesisBatchInfo" in m for m in messages)
    assert deployment.differences(), "the given-up batch should be missing"
    before = deployment.state()

    code, report = run_redrive(deployment.url, "--queue-url", deployment.queue,
                               "--function-name", deployment.function, "--dry-run")
    assert code == 0, report
    assert "redrive: event metrics" in report
    assert report.count("; would recover\n") == len(messages)
    assert deployment.state() == before
    assert len(queue_messages(deployment.aws, deployment.queue)) == len(messages)

    code, report = run_redrive(deployment.url, "--queue-url", deployment.queue,
                               "--function-name", deployment.function, "--batch-size", "7")
    assert code == 0, report
    assert report.count("recovered:") == len(messages)
    assert f"summary: {len(messages)} recovered; {BATCH} record(s) replayed" in report
    assert queue_messages(deployment.aws, deployment.queue) == []
    assert not deployment.differences()

    # A message redriven twice (a run stopped before deleting it) counts nothing twice.
    deployment.aws.sqs.send_message(QueueUrl=deployment.queue,
                                    MessageBody=json.dumps(messages[0]))
    code, report = run_redrive(deployment.url, "--queue-url", deployment.queue,
                               "--function-name", deployment.function, "--batch-size", "7")
    assert code == 0, report
    assert not deployment.differences()


def test_a_seed_003_deployments_given_up_batch_is_replayed_into_its_table(
        moto: MotoServer) -> None:
    """The redrive builds the handler from the function's environment, so it writes the
    keys the function does: ``partition_key``/``sort_key`` under the seed 003 profile."""
    deployment = EventsDeployment(moto, "redrive-seed-003", profile="seed-003")
    deployment.put(deployment.workload.records)
    shard, records = deployment.read_new()
    deployment.poisoned = {r["kinesis"]["sequenceNumber"] for r in records[:BATCH]}
    deployment.mapping.deliver(shard, records)
    deployment.poisoned = set()
    assert deployment.differences(), "the given-up batch should be missing"

    code, report = run_redrive(deployment.url, "--queue-url", deployment.queue,
                               "--function-name", deployment.function)
    assert code == 0, report
    assert not deployment.differences()
    items, _ = deployment.state()
    assert all({"partition_key", "sort_key"} <= set(item) and "pk" not in item
               for item in items)
