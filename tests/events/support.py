"""Event factories and in-memory stores for the event pipeline's tests."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, cast

from local_aws.events_harness import (
    BUCKET,
    LOOKUP_TABLE,
    METRICS_TABLE,
    encode_event,
    harness_config,
    kinesis_record,
    memory_tables,
)
from local_aws.memory import MemoryS3
from streamagg_engine.stores import ArchiveStore
from streamagg_events.config import EventMetricsConfig
from streamagg_events.pipeline import BatchResult, Stores, process_batch
from streamagg_events.stores import LookupStore, MetricsStore

NOW_MS = 1_769_900_000_000
LOOKUPS = [
    {"pk": {"S": "EXPERIMENT#exp-1"}, "name": {"S": "Checkout button"}},
    {"pk": {"S": "ASSIGNMENT#exp-1#alice"}, "variant": {"S": "green"},
     "assigned_at": {"S": "2026-01-31T00:00:00Z"}},
    {"pk": {"S": "ASSIGNMENT#exp-1#bob"}, "variant": {"S": "control"}},
]


def document(index: int = 1, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"event_id": f"ev-{index}", "event_type": "purchase",
                           "user_id": "alice", "experiment_id": "exp-1",
                           "timestamp": "2026-01-31T23:30:00Z", "value": Decimal("12.50")}
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def record(doc: Any, sequence: int, partition_key: str = "alice") -> dict[str, Any]:
    data = doc if isinstance(doc, str) else encode_event(doc)
    return kinesis_record(data, sequence, partition_key, NOW_MS / 1000)


def raw_record(payload: bytes, sequence: int) -> dict[str, Any]:
    return kinesis_record(base64.b64encode(payload).decode(), sequence, "p", NOW_MS / 1000)


class Memory:
    """The pipeline on in-memory DynamoDB and S3, lookups loaded."""

    def __init__(self, config: EventMetricsConfig | None = None) -> None:
        self.config = config or harness_config()
        self.ddb = memory_tables()
        self.s3 = MemoryS3()
        for item in LOOKUPS:
            self.ddb.put_item(TableName=LOOKUP_TABLE, Item=item)
        self.pool = ThreadPoolExecutor(4)

    def stores(self, ddb: Any = None, s3: Any = None) -> Stores:
        ddb = ddb or self.ddb
        return Stores(lookups=LookupStore(ddb, LOOKUP_TABLE),
                           metrics=MetricsStore(ddb, self.config),
                           archive=ArchiveStore(cast(Any, s3 or self.s3), BUCKET))

    def process(self, records: list[dict[str, Any]], **ports: Any) -> BatchResult:
        return process_batch(records, config=self.config, stores=self.stores(**ports),
                             pool=self.pool, now_ms=NOW_MS)

    def counter(self, experiment: str, variant: str, window: str, start: str,
                ) -> dict[str, Decimal]:
        item = self.ddb.get_item(TableName=METRICS_TABLE, Key={
            "pk": {"S": f"EXP#{experiment}"},
            "sk": {"S": f"{window}#{start}#VARIANT#{variant}"}}).get("Item", {})
        return {k: Decimal(v["N"]) for k, v in item.items() if "N" in v and k != "ttl"}
