"""A record over a DynamoDB limit never blocks its shard: on moto's server, through the
local event source mapping, replayed ten times, skipped every time, checkpoint past it."""

from __future__ import annotations

import time
from typing import Any

from local_aws.event_source_mapping import LocalEventSourceMapping, MappingSettings
from streamagg_projection.config import ProjectionConfig
from streamagg_projection.handler import build_runtime, handle
from tests.hostile.worlds import log_lines, projection_image
from tests.moto_fixtures import LocalAws

TOO_LONG = "s" * 1100
"""A source id that makes the dashboard sort key ``{ingested_at}#{source_id}`` 1,121 bytes:
DynamoDB refuses a sort key over 1,024 bytes on every attempt."""


def _tables(aws: LocalAws) -> tuple[str, str]:
    """The source table (with its stream) and the dashboard table; (stream ARN, dashboard)."""
    source = "hostile-source"
    aws.ddb.create_table(
        TableName=source, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "source_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "source_id", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    aws.ddb.create_table(
        TableName="hostile-dashboard", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "day_partition", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                              for a in ("day_partition", "sk")])
    stream = aws.ddb.describe_table(TableName=source)["Table"]["LatestStreamArn"]
    return stream, "hostile-dashboard"


def _put(aws: LocalAws, source_id: str) -> None:
    aws.ddb.put_item(TableName="hostile-source", Item=projection_image(source_id))


def test_a_record_over_a_limit_is_skipped_on_every_replay_and_the_shard_moves_on(
    aws: LocalAws, capsys: Any,
) -> None:
    stream, dashboard = _tables(aws)
    _put(aws, "good#1")
    _put(aws, TOO_LONG)
    _put(aws, "good#2")
    runtime = build_runtime(ProjectionConfig(dashboard_table_name=dashboard).to_env(),
                            dynamodb=aws.ddb)

    def invoke(event: dict[str, Any]) -> Any:
        return handle(event, runtime, now_ms=int(time.time() * 1000))

    def mapping() -> LocalEventSourceMapping:
        return LocalEventSourceMapping(
            aws.streams, stream, invoke, on_failure=aws.dlq_messages.append, clock=time.time,
            settings=MappingSettings(batch_size=100, retry_attempts=10))

    capsys.readouterr()
    for _ in range(10):  # ten replays of the shard from its start
        report = mapping().drain()
        assert (report.function_errors, report.partial_failures, report.records_sent_to_dlq,
                report.records_delivered) == (0, 0, 0, 3)
    skipped = [line for line in log_lines(capsys.readouterr().out)
               if line.get("message") == "skipped malformed record"]
    assert len(skipped) == 10
    assert all("1024-byte sort key limit" in line["reason"] for line in skipped)
    assert aws.dlq_messages == []

    # The checkpoint is past the bad record: the next drain delivers only what is new.
    live = mapping()
    live.drain()
    _put(aws, "good#3")
    report = live.drain()
    assert report.records_delivered == 3 + 1
    items = aws.items(dashboard)
    assert sorted(i["source_id"]["S"] for i in items) == ["good#1", "good#2", "good#3"]
