"""The real handler on moto: a source table's own stream, a dashboard table, deletions."""

from __future__ import annotations

import itertools
import time
from typing import Any

from local_aws.event_source_mapping import LocalEventSourceMapping, MappingSettings
from streamagg_projection.config import ProjectionConfig
from streamagg_projection.handler import build_runtime, handle
from tests.moto_fixtures import LocalAws

_names = itertools.count(1)
AT = "2026-03-02T08:15:00.000Z"


def _tables(aws: LocalAws) -> tuple[str, str, str]:
    source, dashboard = f"sentiment-items-{next(_names)}", f"dashboard-{next(_names)}"
    aws.ddb.create_table(
        TableName=source, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "source_id", "KeyType": "HASH"},
                   {"AttributeName": "ingested_at", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                              for n in ("source_id", "ingested_at")],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    aws.ddb.create_table(
        TableName=dashboard, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "day_partition", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                              for n in ("day_partition", "sk")])
    stream = aws.ddb.describe_table(TableName=source)["Table"]["LatestStreamArn"]
    return source, dashboard, stream


def _put(aws: LocalAws, table: str, source_id: str, *, status: str = "analyzed",
         tags: list[str] | None = None, score: str | None = "0.8") -> None:
    item: dict[str, Any] = {"source_id": {"S": source_id}, "ingested_at": {"S": AT},
                            "status": {"S": status}, "sentiment": {"S": "positive"}}
    if score is not None:
        item["score"] = {"N": score}
    if tags:
        item["matched_tags"] = {"SS": tags}
    aws.ddb.put_item(TableName=table, Item=item)


def _sks(aws: LocalAws, table: str) -> set[str]:
    return {item["sk"]["S"] for item in aws.items(table)}


def test_analysed_items_tag_changes_and_deletions_reach_the_dashboard(aws: LocalAws) -> None:
    source, dashboard, stream = _tables(aws)
    config = ProjectionConfig(dashboard_table_name=dashboard)
    runtime = build_runtime(config.to_env(), dynamodb=aws.ddb)
    mapping = LocalEventSourceMapping(
        aws.streams, stream, lambda event: handle(event, runtime, now_ms=int(time.time() * 1000)),
        settings=MappingSettings(batch_size=100, retry_attempts=3),
        on_failure=aws.dlq_messages.append, clock=time.time)

    _put(aws, source, "a", status="pending", score=None)
    _put(aws, source, "b", tags=["AI", "europe"])
    _put(aws, source, "c", tags=["climate"])
    _put(aws, source, "bad", score=None)
    mapping.drain()
    assert _sks(aws, dashboard) == {f"{AT}#b", f"TAG#AI#{AT}#b", f"TAG#europe#{AT}#b",
                                    f"{AT}#c", f"TAG#climate#{AT}#c"}

    _put(aws, source, "a", tags=["AI"])                      # pending -> analysed
    _put(aws, source, "b", tags=["AI"])                      # drops a tag
    aws.ddb.delete_item(TableName=source, Key={"source_id": {"S": "c"},
                                               "ingested_at": {"S": AT}})
    mapping.drain()
    assert _sks(aws, dashboard) == {f"{AT}#a", f"TAG#AI#{AT}#a", f"{AT}#b", f"TAG#AI#{AT}#b"}

    _put(aws, source, "b", status="pending", score=None)    # back to pending
    report = mapping.drain()
    assert _sks(aws, dashboard) == {f"{AT}#a", f"TAG#AI#{AT}#a"}
    assert report.partial_failures == 0
    assert aws.dlq_messages == []
    (item,) = [i for i in aws.items(dashboard) if i["sk"]["S"] == f"{AT}#a"]
    assert item["sentiment_score_combined"] == {"S": "positive#0.80"}
    assert item["expires_at"] == {"N": str(1772439300 + 7 * 86400)}
