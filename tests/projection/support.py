"""Record factories for the projection tests."""

from __future__ import annotations

import itertools
from typing import Any

from local_aws.stream_records import lambda_record
from tests.moto_fixtures import LocalAws

_sequence = itertools.count(10**20, 7)
_table_names = itertools.count(1)


def create_tables(aws: LocalAws, *, sort_key: str, prefix: str = "sentiment-items"
                  ) -> tuple[str, str, str]:
    """A primary table streaming its images and a dashboard table keyed ``day_partition`` +
    ``sort_key``, named uniquely: (primary, dashboard, primary's stream ARN)."""
    n = next(_table_names)
    primary, dashboard = f"{prefix}-primary-{n}", f"{prefix}-dashboard-{n}"
    aws.ddb.create_table(
        TableName=primary, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "source_id", "KeyType": "HASH"},
                   {"AttributeName": "ingested_at", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"}
                              for name in ("source_id", "ingested_at")],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    aws.ddb.create_table(
        TableName=dashboard, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "day_partition", "KeyType": "HASH"},
                   {"AttributeName": sort_key, "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"}
                              for name in ("day_partition", sort_key)])
    stream = aws.ddb.describe_table(TableName=primary)["Table"]["LatestStreamArn"]
    return primary, dashboard, stream


def image(source_id: str = "newsapi#eu-ai-act", *, ingested_at: str = "2025-11-16T14:30:15.000Z",
          status: str = "analyzed", sentiment: str | None = "neutral",
          score: str | None = "0.72", tags: list[str] | None = None,
          **strings: str) -> dict[str, Any]:
    found: dict[str, Any] = {"source_id": {"S": source_id}, "ingested_at": {"S": ingested_at},
                             "status": {"S": status}}
    if sentiment is not None:
        found["sentiment"] = {"S": sentiment}
    if score is not None:
        found["score"] = {"N": score}
    if tags:
        found["matched_tags"] = {"SS": tags}
    found.update({name: {"S": value} for name, value in strings.items()})
    return found


def record(old: dict[str, Any] | None, new: dict[str, Any] | None, *,
           sequence: int | None = None, event_id: str | None = None) -> dict[str, Any]:
    name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    source = new or old
    assert source is not None
    seq = str(sequence if sequence is not None else next(_sequence))
    return lambda_record(name, keys={"source_id": source["source_id"],
                                     "ingested_at": source["ingested_at"]},
                         sequence=seq, created=1_763_303_415, old=old, new=new,
                         event_id=event_id)
