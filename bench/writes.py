"""What a batch writes: requests against their floor, the archive objects, item sizes.

The floor is computed here from the raw records, independently of the aggregator: the
distinct snapshot items a batch touches are the (namespace, entity, resource, window,
window start) of every bucket record that moved a counter; the partitions are the
distinct days of the audit records' own timestamps.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aggregator.config import AggregatorConfig
from aggregator.maintenance import BucketMaintenance
from aggregator.pipeline import Stores, process_batch
from aggregator.stores import SnapshotStore
from streamagg_engine.stores import ArchiveStore

from .baseline import NaiveAggregator
from .fakes import InlineExecutor, NullDynamoDB, NullS3
from .throughput import NullBucketsClient, now_after

_ASSIGNMENT = re.compile(r"(#\w+)\s*(?:=\s*(?:if_not_exists\(#\w+,\s*)?)?(:\w+)")
_WINDOW_FORMATS = {"hourly": "%Y-%m-%dT%H:00:00Z", "daily": "%Y-%m-%dT00:00:00Z",
                   "monthly": "%Y-%m-01T00:00:00Z"}


@dataclass
class WriteCounts:
    records: int = 0
    batches: int = 0
    snapshot_requests: int = 0
    snapshot_items: int = 0
    """The floor: distinct snapshot items the batches touch (summed over batches)."""
    refill_requests: int = 0
    max_refills_per_bucket: int = 0
    buckets: int = 0
    """Distinct buckets per batch, summed over batches."""
    puts: int = 0
    partitions: int = 0
    archived_records: int = 0
    jsonl_bytes: int = 0
    gzip_bytes: int = 0
    baseline_snapshot_requests: int = 0
    baseline_refill_requests: int = 0
    baseline_puts: int = 0
    snapshot_item_bytes: float = 0.0
    bucket_item_bytes: float = 0.0

    @property
    def requests(self) -> int:
        return self.snapshot_requests + self.refill_requests + self.puts

    @property
    def baseline_requests(self) -> int:
        return self.baseline_snapshot_requests + self.baseline_refill_requests + self.baseline_puts

    @property
    def wcu_per_snapshot_write(self) -> int:
        return max(1, math.ceil(self.snapshot_item_bytes / 1024))

    @property
    def wcu_per_refill(self) -> int:
        return max(1, math.ceil(self.bucket_item_bytes / 1024))


def measure(batches: Sequence[Sequence[dict[str, Any]]], config: AggregatorConfig) -> WriteCounts:
    counts = WriteCounts()
    naive = NaiveAggregator()
    snapshot_sizes: list[int] = []
    for batch in batches:
        snapshots, buckets, s3 = NullDynamoDB(keep=True), NullBucketsClient(keep=True), NullS3()
        ddb_snapshots: Any = snapshots
        ddb_buckets: Any = buckets
        archive: Any = s3
        stores = Stores(snapshots=SnapshotStore(ddb_snapshots, config),
                        buckets=BucketMaintenance(ddb_buckets, config.table_name),
                        archive=ArchiveStore(archive, config.archive_bucket_name))
        now_ms = now_after(batch)
        process_batch(batch, config=config, stores=stores, pool=InlineExecutor(), now_ms=now_ms)
        counts.records += len(batch)
        counts.batches += 1
        counts.snapshot_requests += snapshots.calls
        counts.snapshot_items += len(_snapshot_items(batch, config))
        counts.refill_requests += buckets.calls
        per_bucket = Counter(r["Key"]["PK"]["S"] for r in buckets.requests)
        counts.max_refills_per_bucket = max(counts.max_refills_per_bucket,
                                            max(per_bucket.values(), default=0))
        counts.buckets += len(_buckets(batch))
        counts.puts += len(s3.objects)
        counts.partitions += len(_partitions(batch))
        for body in s3.objects.values():
            text = gzip.decompress(body)
            counts.jsonl_bytes += len(text)
            counts.gzip_bytes += len(body)
            counts.archived_records += text.count(b"\n")
        plan = naive.plan(batch, now_ms)
        counts.baseline_snapshot_requests += len(plan.updates)
        counts.baseline_refill_requests += len(plan.refills)
        counts.baseline_puts += len(plan.puts)
        snapshot_sizes += [item_bytes(r) for r in snapshots.requests]
    counts.snapshot_item_bytes = max(snapshot_sizes, default=0)
    counts.bucket_item_bytes = max(
        (_image_bytes(r["dynamodb"]["NewImage"]) for b in batches for r in b
         if r["eventName"] == "MODIFY"), default=0)
    return counts


def _snapshot_items(batch: Sequence[dict[str, Any]],
                    config: AggregatorConfig) -> set[tuple[str, ...]]:
    items: set[tuple[str, ...]] = set()
    for record in batch:
        body = record["dynamodb"]
        new, old = body.get("NewImage"), body.get("OldImage") or {}
        if record["eventName"] == "REMOVE" or not new or "/BUCKET#" not in new["PK"]["S"]:
            continue
        moved = any(
            name.startswith("b_") and name.endswith("_tc") and name != "b_wcu_tc"
            and name in old and value != old[name]
            for name, value in new.items()
        )
        if not moved:
            continue
        moment = datetime.fromtimestamp(body["ApproximateCreationDateTime"], tz=UTC)
        namespace = new["PK"]["S"].split("/", 1)[0]
        for window in config.snapshot_windows:
            items.add((namespace, new["entity_id"]["S"], new["resource"]["S"], window.value,
                       moment.strftime(_WINDOW_FORMATS[window.value])))
    return items


def _buckets(batch: Sequence[dict[str, Any]]) -> set[str]:
    return {r["dynamodb"]["Keys"]["PK"]["S"] for r in batch
            if "/BUCKET#" in r["dynamodb"]["Keys"]["PK"]["S"]}


def _partitions(batch: Sequence[dict[str, Any]]) -> set[str]:
    days = set()
    for record in batch:
        old = record["dynamodb"].get("OldImage") or {}
        if record["eventName"] == "REMOVE" and "/AUDIT#" in old.get("PK", {}).get("S", ""):
            stamp = datetime.fromisoformat(old["timestamp"]["S"].replace("Z", "+00:00"))
            days.add(stamp.astimezone(UTC).strftime("%Y-%m-%d"))
    return days


def item_bytes(request: dict[str, Any]) -> int:
    """Estimated size of the item an UpdateItem leaves (DynamoDB's item size rules)."""
    size = sum(len(k) + _value_bytes(v) for k, v in request["Key"].items())
    names, values = request["ExpressionAttributeNames"], request["ExpressionAttributeValues"]
    for name, value in _ASSIGNMENT.findall(request["UpdateExpression"]):
        size += len(names[name].encode()) + _value_bytes(values[value])
    return size


def _image_bytes(image: dict[str, Any]) -> int:
    return sum(len(k.encode()) + _value_bytes(v) for k, v in image.items())


def _value_bytes(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return len(str(inner).lstrip("-").replace(".", "").strip("0")) // 2 + 2
    if kind == "M":
        return 3 + sum(len(k) + _value_bytes(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(_value_bytes(v) + 1 for v in inner)
    return len(json.dumps(inner))
