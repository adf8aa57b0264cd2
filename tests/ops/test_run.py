"""One redrive run's decisions: expired ranges, failures, held-back shards, odd messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber

from aggregator.config import AggregatorConfig
from redrive.errors import FunctionError
from redrive.run import Redrive, Report, Settings, Status
from redrive.stream import RecordFilter
from redrive.usage import UsagePipeline
from tests.moto_fixtures import LocalAws

from .support import Delivery, Traffic, create_queue, queue_messages
from .test_messages import on_failure
from .test_replay import ScriptedTarget
from .test_stream import SHARD, STREAM, get_records_record, seq, streams_client


class Run:
    def __init__(self, aws: LocalAws, *, streams: Any = None, target: Any = None,
                 config: AggregatorConfig | None = None,
                 filters: dict[str, RecordFilter] | None = None) -> None:
        self.aws = aws
        self.queue = create_queue(aws)
        self.streams = streams or aws.streams
        self.target = target or ScriptedTarget()
        table = aws.create_table("run")[0]
        self.config = config or AggregatorConfig(table_name=table, enable_archival=False)
        self.filters = filters or {}
        self.lines: list[str] = []
        self.pauses: list[float] = []

    def __call__(self, **settings: Any) -> Report:
        self.lines.clear()
        pipeline = UsagePipeline(
            streams=self.streams, dynamodb=self.aws.ddb, config=self.config,
            target=self.target, filters=self.filters, region="us-east-1",
            sleep=self.pauses.append)
        return Redrive(
            sqs=self.aws.sqs, queue_url=self.queue, pipeline=pipeline,
            settings=Settings(wait_seconds=0, **settings), out=self.lines.append,
            sleep=self.pauses.append,
        ).run()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def send(self, body: Any) -> None:
        self.aws.sqs.send_message(QueueUrl=self.queue, MessageBody=json.dumps(body)
                                  if not isinstance(body, str) else body)

    def left(self) -> int:
        return len(queue_messages(self.aws, self.queue))


def expired_message() -> dict[str, Any]:
    return on_failure(streamArn=STREAM, shardId=SHARD, startSequenceNumber=seq(100),
                      endSequenceNumber=seq(200), batchSize=3,
                      approximateArrivalOfFirstRecord="2026-05-01T08:00:00Z",
                      approximateArrivalOfLastRecord="2026-05-01T08:00:02Z")


def stub_trimmed(client: Any, stub: Stubber, survivors: list[int]) -> None:
    stub.add_client_error("get_shard_iterator", "TrimmedDataAccessException",
                          "Attempted to access data older than the trim horizon")
    stub.add_response("get_shard_iterator", {"ShardIterator": "horizon"})
    stub.add_response("get_records", {"Records": [get_records_record(seq(n))
                                                  for n in [*survivors, 300]],
                                      "NextShardIterator": "next"})


def test_an_expired_range_says_what_was_lost_and_stays_in_the_queue(aws: LocalAws) -> None:
    client = streams_client()
    run = Run(aws, streams=client)
    run.send(expired_message())
    with Stubber(client) as stub:
        stub_trimmed(client, stub, survivors=[])
        report = run()
    assert [o.status for o in report.outcomes] == [Status.EXPIRED]
    assert report.exit_code == 1
    assert run.target.calls == []
    assert "EXPIRED: nothing of this range is left in the stream: TrimmedDataAccessException" \
        in run.text
    assert (f"lost: shard {SHARD}, sequence {seq(100)}..{seq(200)}, 3 record(s) that arrived "
            "2026-05-01T08:00:00Z to 2026-05-01T08:00:02Z (") in run.text
    assert "run with --discard-expired to delete it" in run.text
    assert run.left() == 1

    with Stubber(client) as stub:
        stub_trimmed(client, stub, survivors=[])
        report = run(dry_run=True, discard_expired=True)
    assert [o.status for o in report.outcomes] == [Status.EXPIRED]
    assert "dry run: nothing to replay; expired" in run.text
    assert run.left() == 1

    with Stubber(client) as stub:
        stub_trimmed(client, stub, survivors=[])
        report = run(discard_expired=True)
    assert report.exit_code == 0
    assert report.outcomes[0].deleted
    assert run.left() == 0


def test_what_is_left_of_a_partly_expired_range_is_replayed(aws: LocalAws) -> None:
    client = streams_client()
    run = Run(aws, streams=client)
    run.send(expired_message())
    with Stubber(client) as stub:
        stub_trimmed(client, stub, survivors=[150, 200])
        report = run()
    assert run.target.calls == [[seq(150), seq(200)]]
    assert [o.status for o in report.outcomes] == [Status.EXPIRED]
    assert "PARTLY EXPIRED" in run.text
    assert f"sequence {seq(100)} up to (not including) {seq(150)}" in run.text
    assert "(the 2 record(s) left were replayed)" in run.text
    assert run.left() == 1


def outage(aws: LocalAws, run: Run, table: str, stream: str) -> int:
    traffic = Traffic(aws, table)
    traffic.burst(["x", "y"], rounds=6)
    delivery = Delivery(aws, stream, aws.runtime(run.config), run.queue, batch_size=4)
    delivery.drain("down")
    return len(queue_messages(aws, run.queue))


def test_a_failing_range_holds_back_the_rest_of_its_shard(aws: LocalAws) -> None:
    table, stream = aws.create_table("held")
    run = Run(aws, target=ScriptedTarget(*[FunctionError("still broken")] * 3),
              config=AggregatorConfig(table_name=table, enable_archival=False))
    messages = outage(aws, run, table, stream)
    assert messages >= 3
    report = run(max_attempts=3)
    assert [o.status for o in report.outcomes] == \
        [Status.FAILED] + [Status.HELD_BACK] * (messages - 1)
    assert len(run.target.calls) == 3
    assert run.pauses == [1.0, 2.0]
    assert "stopped at" in run.text
    assert "held back: an older range of this shard did not go through" in run.text
    assert report.exit_code == 1
    assert run.left() == messages


def test_max_messages_takes_the_oldest_ranges_and_leaves_the_rest(aws: LocalAws) -> None:
    table, stream = aws.create_table("max")
    run = Run(aws, config=AggregatorConfig(table_name=table, enable_archival=False))
    messages = outage(aws, run, table, stream)
    report = run(max_messages=2, dry_run=True)
    statuses = [o.status for o in report.outcomes]
    assert statuses == [Status.WOULD_RECOVER] * 2 + [Status.LEFT_FOR_LATER] * (messages - 2)
    taken = [int(o.failed.start) for o in report.outcomes if o.failed is not None]
    assert taken == sorted(taken)
    assert run.target.calls == []
    assert f"({messages - 2} not taken: --max-messages)" in run.text
    assert run.left() == messages


def test_records_the_mappings_filter_leaves_out_are_not_replayed(aws: LocalAws) -> None:
    table, stream = aws.create_table("filter")
    run = Run(aws, config=AggregatorConfig(table_name=table, enable_archival=False),
              filters={})
    outage(aws, run, table, stream)
    run.filters[stream] = RecordFilter([{"eventName": ["INSERT"]}])
    report = run()
    replayed = [number for call in run.target.calls for number in call]
    assert len(replayed) == 2  # the two buckets' first acquire, nothing else
    assert all(o.status is Status.RECOVERED for o in report.outcomes)
    assert "left out by the mapping's filter" in run.text


@pytest.mark.parametrize("body", ["hello", {"DDBStreamBatchInfo": {"shardId": "s"}}])
def test_a_message_that_is_no_on_failure_record_is_left_alone(aws: LocalAws, body: Any) -> None:
    run = Run(aws)
    run.send(body)
    report = run()
    assert [o.status for o in report.outcomes] == [Status.NOT_ON_FAILURE]
    assert "not an on-failure message" in run.text
    assert report.exit_code == 1
    assert run.left() == 1


def test_an_empty_queue_is_a_successful_run(aws: LocalAws) -> None:
    run = Run(aws)
    report = run()
    assert report.exit_code == 0
    assert run.lines[-1] == "summary: no messages; 0 record(s) replayed; 0 message(s) deleted, " \
        "0 left in the queue"
