"""One batch, end to end: decode, plan, write concurrently, and report what failed.

Data problems never raise: a malformed record is logged with its event id and reason,
counted, and skipped. A write that fails after the SDK's retries fails the records it
carried; the lowest of them is reported in ``batchItemFailures`` so Lambda retries from
there, and the stores make the redelivered records that had succeeded no-ops.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from streamagg_engine.batch import (
    UNEXPECTED_SHAPES,
    FailedRecords,
    Job,
    log_rejected,
    log_skipped,
    settle,
    write_failed,
)
from streamagg_engine.errors import MalformedRecordError, StoreError
from streamagg_engine.jsonl import CONTENT_ENCODING, CONTENT_TYPE
from streamagg_engine.records import StreamRecord, parse_record

from .archiver import (
    ArchiveLine,
    build_objects,
    extract_line,
    is_archivable,
)
from .config import AggregatorConfig
from .keys import check_snapshot_keys
from .maintenance import (
    BucketRefillState,
    RefillOutcome,
    bucket_states,
    grows_shards,
    has_wcu,
    state_pk,
)
from .processor import (
    CounterChange,
    SnapshotKey,
    SnapshotUpdate,
    decode_change,
    is_source_key,
    plan_snapshots,
)
from .schema import SCHEMA_WATCH, schema_version_of
from .stores import NEVER_COUNTED, Applied
from .unplaced import unplaced

logger = logging.getLogger(__name__)


class SnapshotWriter(Protocol):
    def apply(self, update: SnapshotUpdate) -> Applied: ...


class BucketMaintainer(Protocol):
    """zae-limiter's own bucket maintenance (``maintenance.py``); each call may raise
    :class:`StoreError` and never costs more than itself."""

    def refill(self, state: BucketRefillState, now_ms: int) -> RefillOutcome: ...

    def shard(self, state: BucketRefillState, now_ms: int) -> bool: ...

    def propagate(self, record: Any, now_ms: int) -> int: ...


class ArchiveWriter(Protocol):
    def put(self, key: str, body: bytes, *, content_type: str,
            content_encoding: str) -> None: ...


@dataclass(frozen=True)
class Stores:
    """The ports a batch writes through (``stores.py`` has the DynamoDB/S3 adapters)."""

    snapshots: SnapshotWriter
    buckets: BucketMaintainer | None
    """None when bucket maintenance (``enable_refill``) is off."""
    archive: ArchiveWriter | None
    """None when archival is off."""


@dataclass
class BatchResult:
    """What one batch did; logged on completion and turned into Lambda's response."""

    records: int = 0
    skipped_malformed: int = 0
    ignored: int = 0
    counted_records: int = 0
    snapshot_writes: int = 0
    duplicate_contributions: int = 0
    reconciled_gaps: int = 0
    """(snapshot item, source) pairs where records never counted were counted from the
    source's cumulative counters (``chain.py``)."""
    unplaced_gaps: int = 0
    """(snapshot item, source) pairs whose gap tokens no finer window could place."""
    gaps: list[tuple[SnapshotKey, dict[str, dict[str, int]]]] = field(default_factory=list)
    refills_written: int = 0
    refills_lost_race: int = 0
    refills_failed: int = 0
    """Maintenance steps (refill, sharding backstop, shard propagation) that failed."""
    shards_doubled: int = 0
    """Buckets whose shard 0 the sharding backstop doubled (``wcu`` under 20 %)."""
    shards_propagated: int = 0
    """Shard items restamped or created after a ``shard_count`` grew."""
    archived_records: int = 0
    archive_objects: int = 0
    unknown_schema_versions: int = 0
    """zae-limiter schema versions newer than this profile knows (``schema.py``): on the
    stream in this batch, or in the table at container start (the first batch)."""
    failed_writes: int = 0
    failures: FailedRecords = field(default_factory=lambda: FailedRecords(ordered=True))
    """Every record some failed write carried (a stream: Lambda retries from the first)."""

    @property
    def first_failure(self) -> str | None:
        return self.failures.first

    def response(self) -> dict[str, list[dict[str, str]]]:
        return self.failures.response()

    def summary(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


@dataclass
class _Decoded:
    changes: list[tuple[StreamRecord, CounterChange]] = field(default_factory=list)
    buckets: list[Any] = field(default_factory=list)
    """Raw MODIFY records of bucket items, for zae-limiter's maintenance."""
    lines: list[ArchiveLine] = field(default_factory=list)


def process_batch(
    raw_records: Sequence[Any],
    *,
    config: AggregatorConfig,
    stores: Stores,
    pool: Executor,
    now_ms: int,
) -> BatchResult:
    with _cyclic_gc_paused():
        return _process(raw_records, config, stores, pool, now_ms)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Keep the cyclic garbage collector out of the batch; reference counting still runs.

    A batch allocates a handful of objects per record, none in a reference cycle, and
    holds them until it ends. Each time the allocations cross the collector's threshold
    it walks the live heap (the parsed event, botocore's models) and finds nothing to
    free: about 15 % of the batch's pure CPU time in ``make bench``. Acyclic garbage is
    still freed at once; the rare cycle (a traceback) waits for the next collection.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _process(raw_records: Sequence[Any], config: AggregatorConfig, stores: Stores,
             pool: Executor, now_ms: int) -> BatchResult:
    result = BatchResult(records=len(raw_records),
                         unknown_schema_versions=SCHEMA_WATCH.take_pending())
    decoded = _decode(raw_records, config, result)
    decoded.changes.sort(key=lambda pair: pair[0].position)
    result.counted_records = len(decoded.changes)

    jobs: list[Job] = []

    # Per job, only bound methods and partials: what a failure needs is worked out if one
    # happens, not for every write.
    for update in plan_snapshots(decoded.changes, config):
        jobs.append((pool.submit(stores.snapshots.apply, update),
                     partial(_count_snapshot, result, update.key),
                     partial(_snapshot_failed, result, update)))

    if stores.archive is not None:
        for obj in build_objects(decoded.lines, config.archive_prefix):
            carried = [(r.position, r.sequence_number) for r in obj.records]

            def archived(_: None, count: int = len(obj.records)) -> None:
                result.archive_objects += 1
                result.archived_records += count

            jobs.append((
                pool.submit(stores.archive.put, obj.key, obj.body, content_type=CONTENT_TYPE,
                            content_encoding=CONTENT_ENCODING),
                archived, _failing(result, carried, "archive", obj.key)))

    buckets = stores.buckets
    if buckets is not None:
        for state in bucket_states(decoded.buckets):
            jobs.append((pool.submit(_maintain, buckets, state, now_ms),
                         partial(_count_maintenance, result, state),
                         partial(_bucket_failed, result, state)))

    settle(jobs)
    if buckets is not None:
        # After the refills, as upstream orders them: a quota's refill is pinned on the
        # shard count that a propagation would raise.
        for raw in decoded.buckets:
            if grows_shards(raw):
                try:
                    result.shards_propagated += buckets.propagate(raw, now_ms)
                except StoreError as exc:
                    _maintenance_failed(result, "shard propagation", _pk(raw), exc)
    if result.gaps:
        _report_unplaced(result, config)
    return result


def _decode(raw_records: Sequence[Any], config: AggregatorConfig, result: BatchResult) -> _Decoded:
    decoded = _Decoded()
    source_marker = config.source_key_marker
    archival = config.archival_enabled
    maintained = config.enable_refill
    for raw in raw_records:
        try:
            record = parse_record(raw)
            namespace, rest = record.namespace_and_rest
            if rest.startswith(source_marker) or is_source_key(rest, record, config):
                change = decode_change(record, config, namespace)
                if change is not None:
                    check_snapshot_keys(config, change.namespace, change.entity,
                                        change.resource)
                    decoded.changes.append((record, change))
                    if maintained and record.event_name == "MODIFY":
                        decoded.buckets.append(raw)
                elif maintained and record.event_name == "MODIFY":
                    decoded.buckets.append(raw)  # a refill, a shard count, a new schedule
                else:
                    result.ignored += 1
            elif archival and is_archivable(record, config):
                decoded.lines.append(extract_line(record))
            else:
                result.ignored += 1
                if (version := schema_version_of(record)) is not None:
                    result.unknown_schema_versions += SCHEMA_WATCH.observe(version,
                                                                           source="stream")
        except (MalformedRecordError, *UNEXPECTED_SHAPES) as exc:
            result.skipped_malformed += 1
            log_skipped(logger, exc, record_id=_event_id(raw), sequence_number=_sequence(raw))
    return decoded


def _failing(result: BatchResult, carried: list[tuple[str, str]], kind: str,
             target: str) -> Callable[[StoreError], None]:
    """A write's failure callback: its records go back to Lambda, unless the write was
    refused for what it carried (it would be refused again): then they are skipped."""
    report = write_failed(logger, result.failures, carried, kind, target)

    def fail(exc: StoreError) -> None:
        if exc.permanent:
            result.skipped_malformed += len(carried)
            for _, sequence_number in carried:
                log_rejected(logger, exc, record_id=sequence_number, target=target)
            return
        result.failed_writes += 1
        report(exc)
    return fail


def _count_snapshot(result: BatchResult, key: SnapshotKey, applied: Applied) -> None:
    result.snapshot_writes += applied.written
    result.duplicate_contributions += applied.duplicates
    if applied.gaps:
        result.reconciled_gaps += len(applied.gaps)
        result.gaps.append((key, applied.gaps))


def _report_unplaced(result: BatchResult, config: AggregatorConfig) -> None:
    for found in unplaced(result.gaps, config.snapshot_windows):
        result.unplaced_gaps += 1
        logger.warning(NEVER_COUNTED, extra={
            "kind": "unplaced", "entity_id": found.coarse.entity,
            "resource": found.coarse.resource, "window": found.coarse.window.value,
            "window_key": found.coarse.window_key, "finer_window": found.finer.value,
            "source": found.source, "tokens": found.tokens,
            "advice": "in this window but in none of its finer ones: redrive the DLQ's "
                      "ranges while the stream has them (python -m redrive); after that, "
                      f"the {found.finer.value} items of this window lack these tokens at most",
        })


def _snapshot_failed(result: BatchResult, update: SnapshotUpdate, exc: StoreError) -> None:
    carried = [(c.position, c.sequence_number)
               for items in update.by_source.values() for c in items]
    _failing(result, carried, "snapshot", str(update.key))(exc)


def _maintain(buckets: BucketMaintainer, state: BucketRefillState,
              now_ms: int) -> list[tuple[str, RefillOutcome | bool | StoreError]]:
    """One bucket's maintenance, in upstream's order: the refill, then the sharding
    backstop (each step's failure is its own; the other still runs)."""
    steps: list[tuple[str, RefillOutcome | bool | StoreError]] = []
    try:
        steps.append(("bucket refill", buckets.refill(state, now_ms)))
    except StoreError as exc:
        steps.append(("bucket refill", exc))
    if has_wcu(state):
        try:
            steps.append(("proactive shard", buckets.shard(state, now_ms)))
        except StoreError as exc:
            steps.append(("proactive shard", exc))
    return steps


def _count_maintenance(result: BatchResult, state: BucketRefillState,
                       steps: list[tuple[str, RefillOutcome | bool | StoreError]]) -> None:
    for action, outcome in steps:
        if isinstance(outcome, StoreError):
            _maintenance_failed(result, action, state_pk(state), outcome)
        elif outcome == "written":
            result.refills_written += 1
        elif outcome == "lost_race":
            result.refills_lost_race += 1
        elif outcome is True:
            result.shards_doubled += 1


def _bucket_failed(result: BatchResult, state: BucketRefillState, exc: StoreError) -> None:
    _maintenance_failed(result, "bucket maintenance", state_pk(state), exc)


def _maintenance_failed(result: BatchResult, action: str, pk: str, exc: StoreError) -> None:
    """Maintenance is the client's backstop: the client refills and shards on its own."""
    result.refills_failed += 1
    logger.warning(f"{action} failed; the client's slow path will do it", extra={
        "pk": pk, "error_code": exc.code, "retryable": exc.retryable, "error": str(exc),
    })


def _pk(raw: Any) -> str:
    return str(raw.get("dynamodb", {}).get("Keys", {}).get("PK", {}).get("S", ""))


def _event_id(raw: Any) -> str | None:
    value = raw.get("eventID") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def _sequence(raw: Any) -> str | None:
    body = raw.get("dynamodb") if isinstance(raw, dict) else None
    value = body.get("SequenceNumber") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None
