"""The projection stage recovered from its DLQ on moto: a batch given up, the same source
items changed again and projected after it, then ``python -m redrive`` replays the range
and the items' newer records, and the dashboard equals the source's final projection."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from local_aws.event_source_mapping import LocalEventSourceMapping, MappingSettings
from local_aws.projection_harness import compare, expected_dashboard, generate_workload
from streamagg_projection.config import ProjectionConfig
from streamagg_projection.handler import build_runtime, handle
from tests.moto_fixtures import LocalAws

from .support import create_function, create_queue, queue_messages, run_redrive

BATCH = 8


class ProjectionDeployment:
    """A source table keyed by ``source_id`` (so a MODIFY can move an item to another day),
    a dashboard table, a function for its environment, a DLQ and a local mapping."""

    def __init__(self, aws: LocalAws) -> None:
        self.aws = aws
        self.source, self.dashboard = f"items-{id(self)}", f"dashboard-{id(self)}"
        aws.ddb.create_table(
            TableName=self.source, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "source_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "source_id", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True,
                                 "StreamViewType": "NEW_AND_OLD_IMAGES"})
        aws.ddb.create_table(
            TableName=self.dashboard, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "day_partition", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                                  for n in ("day_partition", "sk")])
        self.stream = aws.ddb.describe_table(TableName=self.source)["Table"]["LatestStreamArn"]
        config = ProjectionConfig(dashboard_table_name=self.dashboard, max_workers=2)
        self.function = create_function(aws, config.to_env(),
                                        "streamagg_projection.handler.handler")
        self.queue = create_queue(aws)
        self.runtime = build_runtime(config.to_env(), dynamodb=aws.ddb)
        self.poisoned: set[str] = set()
        self.mapping = LocalEventSourceMapping(
            aws.streams, self.stream, self._invoke, clock=time.time,
            settings=MappingSettings(batch_size=BATCH, retry_attempts=1),
            on_failure=lambda message: aws.sqs.send_message(
                QueueUrl=self.queue, MessageBody=json.dumps(message)))

    def _invoke(self, event: dict[str, Any]) -> Mapping[str, Any]:
        if any(r["dynamodb"]["SequenceNumber"] in self.poisoned for r in event["Records"]):
            raise RuntimeError("ValidationException: a bug only this batch triggers")
        return handle(event, self.runtime, now_ms=int(time.time() * 1000))

    def write(self, records: list[dict[str, Any]]) -> None:
        """The workload's history applied to the source table (moto streams it)."""
        for record in records:
            new = record["dynamodb"].get("NewImage")
            if new is None:
                self.aws.ddb.delete_item(TableName=self.source, Key=record["dynamodb"]["Keys"])
            else:
                self.aws.ddb.put_item(TableName=self.source, Item=new)

    def pending_positions(self) -> list[str]:
        """Sequence numbers of the stream's records the mapping has not delivered."""
        shard = self.aws.streams.describe_stream(
            StreamArn=self.stream)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = self.aws.streams.get_shard_iterator(
            StreamArn=self.stream, ShardId=shard,
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        found = self.aws.streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        delivered = self.mapping.report.records_delivered + \
            self.mapping.report.records_sent_to_dlq
        return [r["dynamodb"]["SequenceNumber"] for r in found][delivered:]


def test_a_given_up_batch_is_recovered_after_its_items_changed_again(aws: LocalAws) -> None:
    deployment = ProjectionDeployment(aws)
    workload = generate_workload(1, 70, items=12)
    first, rest = workload.records[:32], workload.records[32:]
    deployment.write(first)
    pending = deployment.pending_positions()
    deployment.poisoned = set(pending[BATCH:2 * BATCH])   # the second batch keeps failing
    deployment.mapping.drain()
    deployment.poisoned = set()
    deployment.write(rest)                                 # the mapping went on
    deployment.mapping.drain()
    messages = queue_messages(aws, deployment.queue)
    assert messages
    expected = expected_dashboard(workload.final)
    assert compare(expected, aws.items(deployment.dashboard)), \
        "the given-up batch should have left the dashboard wrong"
    before = aws.items(deployment.dashboard)

    options = ("--queue-url", deployment.queue, "--function-name", deployment.function)
    code, report = run_redrive(aws.endpoint_url, *options, "--dry-run")
    assert code == 0, report
    assert "redrive: projection" in report
    assert report.count("; would recover\n") == len(messages)
    assert "changed after it: their" in report
    assert aws.items(deployment.dashboard) == before
    assert len(queue_messages(aws, deployment.queue)) == len(messages)

    code, report = run_redrive(aws.endpoint_url, *options, "--batch-size", "3")
    assert code == 0, report
    assert report.count("recovered:") == len(messages)
    assert queue_messages(aws, deployment.queue) == []
    assert not compare(expected, aws.items(deployment.dashboard))

    # Redriven again (a run stopped before deleting a message): nothing changes.
    aws.sqs.send_message(QueueUrl=deployment.queue, MessageBody=json.dumps(messages[0]))
    code, report = run_redrive(aws.endpoint_url, *options)
    assert code == 0, report
    assert not compare(expected, aws.items(deployment.dashboard))
