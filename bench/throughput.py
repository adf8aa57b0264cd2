"""Records per second on one core: CPU time of the pure path, and of the whole batch.

Two scopes, both through the production entry point ``aggregator.pipeline.process_batch``
on an executor that runs each job inline (one core, no threads):

* *decode + aggregate*: the ports are no-ops, so this is decoding, planning snapshots,
  reading bucket states for zae-limiter's maintenance and building the archive objects
  (``pipeline._decode``, ``processor.plan_snapshots``, ``maintenance.bucket_states``,
  ``archiver``) and the pipeline around them.
  The baseline's counterpart is :meth:`NaiveAggregator.plan`.
* *whole batch CPU*: the real store adapters over clients that accept every request and do
  nothing, so every UpdateItem/PutObject is also built. The baseline's counterpart is
  ``plan`` plus :meth:`NaiveAggregator.requests`. Only the SDK and the network are left out
  (``latency.py`` has them).

Every batch is parsed from JSON text before its clock starts, as Lambda's runtime does
before it calls the handler. The clock is the thread's CPU time (``time.thread_time``), so
other processes on the machine do not count, and each batch keeps its best of ``repeat``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from aggregator.config import AggregatorConfig
from aggregator.maintenance import BucketMaintenance, BucketRefillState, RefillOutcome
from aggregator.pipeline import Stores, process_batch
from aggregator.processor import SnapshotUpdate
from aggregator.stores import Applied, SnapshotStore
from streamagg_engine.stores import ArchiveStore

from .baseline import NaiveAggregator
from .fakes import InlineExecutor, NullDynamoDB, NullS3, answering_client


@dataclass(frozen=True)
class Throughput:
    records: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds


def now_after(records: Sequence[dict[str, Any]]) -> int:
    """The handler's clock for a batch: a second after its newest record."""
    return int(records[-1]["dynamodb"]["ApproximateCreationDateTime"] * 1000) + 1000


class _NoOpPorts:
    """The pipeline's three ports, doing nothing: no request is even built."""

    def apply(self, update: SnapshotUpdate) -> Applied:
        return Applied()

    def refill(self, state: BucketRefillState, now_ms: int) -> RefillOutcome:
        return "written"

    def shard(self, state: BucketRefillState, now_ms: int) -> bool:
        return False

    def propagate(self, record: Any, now_ms: int) -> int:
        return 0

    def put(self, key: str, body: bytes, *, content_type: str, content_encoding: str) -> None:
        return None


def no_op_stores(config: AggregatorConfig) -> Stores:
    ports = _NoOpPorts()
    return Stores(snapshots=ports, buckets=ports if config.enable_refill else None,
                  archive=ports if config.archival_enabled else None)


class NullBucketsClient(NullDynamoDB):
    """:class:`NullDynamoDB` with the service model zae-limiter's maintenance reads its
    operations from (``maintenance.NativeTable``); its calls still reach no SDK."""

    def __init__(self, *, keep: bool = False) -> None:
        super().__init__(keep=keep)
        self.meta = _dynamodb_meta()


@cache
def _dynamodb_meta() -> Any:
    """One client's ``meta`` for every batch: building a client is not the batch's cost."""
    return answering_client("dynamodb").meta


def null_stores(config: AggregatorConfig) -> Stores:
    """The real adapters over clients that accept every request and do nothing."""
    ddb: Any = NullDynamoDB()
    buckets: Any = NullBucketsClient()
    s3: Any = NullS3()
    return Stores(
        snapshots=SnapshotStore(ddb, config),
        buckets=BucketMaintenance(buckets, config.table_name) if config.enable_refill
        else None,
        archive=ArchiveStore(s3, config.archive_bucket_name) if config.archival_enabled else None,
    )


def ours(texts: Sequence[str], config: AggregatorConfig, *, repeat: int = 3,
         build_requests: bool = False) -> Throughput:
    make_stores = null_stores if build_requests else no_op_stores
    pool = InlineExecutor()

    def run(batch: list[dict[str, Any]]) -> None:
        process_batch(batch, config=config, stores=make_stores(config), pool=pool,
                      now_ms=now_after(batch))

    return _measure(texts, run, repeat)


def baseline(texts: Sequence[str], *, repeat: int = 3,
             build_requests: bool = False) -> Throughput:
    naive = NaiveAggregator()

    def run(batch: list[dict[str, Any]]) -> None:
        now_ms = now_after(batch)
        plan = naive.plan(batch, now_ms)
        if build_requests:
            naive.requests(plan, now_ms)

    return _measure(texts, run, repeat)


def _measure(texts: Sequence[str], run: Callable[[list[dict[str, Any]]], None],
             repeat: int) -> Throughput:
    total, records = 0.0, 0
    for text in texts:
        best = float("inf")
        for _ in range(repeat):
            batch = json.loads(text)
            started = time.thread_time()
            run(batch)
            best = min(best, time.thread_time() - started)
        total += best
        records += len(json.loads(text))
    return Throughput(records, total)
