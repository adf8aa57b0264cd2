"""The real handler on moto: a source table's own stream, a dashboard table, deletions."""

from __future__ import annotations

import time
from typing import Any

from local_aws.event_source_mapping import LocalEventSourceMapping, MappingSettings
from streamagg_projection.config import ProjectionConfig
from streamagg_projection.handler import build_runtime, handle
from tests.moto_fixtures import LocalAws
from tests.projection.support import create_tables

AT = "2026-03-02T08:15:00.000Z"


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
    source, dashboard, stream = create_tables(aws, sort_key="sk")
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
