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
    skip_reason,
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
from .processor import (
    CounterChange,
    SnapshotKey,
    SnapshotUpdate,
    decode_change,
    is_source_key,
    plan_snapshots,
)
from .refill import BucketState, RefillPlan, bucket_state, merge_states, plan_refill
from .schema import SCHEMA_WATCH, schema_version_of
from .stores import NEVER_COUNTED, Applied
from .unplaced import unplaced

logger = logging.getLogger(__name__)


class SnapshotWriter(Protocol):
    def apply(self, update: SnapshotUpdate) -> Applied: ...


class RefillWriter(Protocol):
    def refill(self, plan: RefillPlan) -> bool: ...


class ArchiveWriter(Protocol):
    def put(self, key: str, body: bytes, *, content_type: str,
            content_encoding: str) -> None: ...


@dataclass(frozen=True)
class Stores:
    """The ports a batch writes through (``stores.py`` has the DynamoDB/S3 adapters)."""

    snapshots: SnapshotWriter
    buckets: RefillWriter | None
    """None when refill is off."""
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
    buckets: list[tuple[BucketState, dict[str, int]]] = field(default_factory=list)
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

    if stores.buckets is not None:
        for state in merge_states(decoded.buckets):
            plan = plan_refill(state, now_ms)
            if plan is None:
                continue
            jobs.append((pool.submit(stores.buckets.refill, plan),
                         partial(_count_refill, result), partial(_refill_failed, result, plan.pk)))

    settle(jobs)
    if result.gaps:
        _report_unplaced(result, config)
    return result


def _decode(raw_records: Sequence[Any], config: AggregatorConfig, result: BatchResult) -> _Decoded:
    decoded = _Decoded()
    source_marker = config.source_key_marker
    archival = config.archival_enabled
    refill = config.enable_refill
    buckets: dict[str, list[_BucketRecord]] = {}
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
                    if refill:
                        _add_bucket_record(buckets, change.source_key,
                                           _BucketRecord(record, change))
                elif refill and record.event_name != "REMOVE":
                    # Whether a record that moved no counter is ``ignored`` depends on its
                    # state, so that one is read now; others only if needed (_newest_state).
                    state = _refill_state(record)
                    if state is None:
                        result.ignored += 1
                    else:
                        _add_bucket_record(buckets, f"{state.pk}|{state.sk}",
                                           _BucketRecord(record, None, state))
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
    decoded.buckets = [newest for records in buckets.values()
                       if (newest := _newest_state(records)) is not None]
    return decoded


@dataclass(slots=True)
class _BucketRecord:
    record: StreamRecord
    change: CounterChange | None
    """What the record consumed (refunds are negative), if it moved a counter."""
    state: BucketState | None = None
    """Read eagerly only when the record moved no counter; otherwise on demand."""
    readable: bool = True


def _add_bucket_record(buckets: dict[str, list[_BucketRecord]], source_key: str,
                       entry: _BucketRecord) -> None:
    """Remember a bucket's record; its refill state is read only if it turns out needed.

    A refill is planned from a bucket's newest state in the batch, so decoding every
    record's full state (a dozen numbers) would be wasted work.
    """
    found = buckets.get(source_key)
    if found is None:
        buckets[source_key] = [entry]
    else:
        found.append(entry)


def _newest_state(records: list[_BucketRecord]) -> tuple[BucketState, dict[str, int]] | None:
    """The newest readable state of a bucket and what the batch consumed from it.

    States are read newest first until one is readable; an unreadable one is logged and
    its consumption left out. Older states are never read, so only a malformed bucket
    item could tell this from reading them all, and only in the refill estimate.
    """
    state = None
    for entry in reversed(records):
        state = entry.state if entry.state is not None else _refill_state(entry.record)
        if state is not None:
            break
        entry.readable = False
    if state is None:
        return None
    consumed: dict[str, int] = {}
    for entry in records:
        if entry.readable and entry.change is not None:
            for name, (old, new) in entry.change.millis.items():
                consumed[name] = consumed.get(name, 0) + new - old
    return state, consumed


def _refill_state(record: StreamRecord) -> BucketState | None:
    """A bucket's refill inputs; a bad one costs only the refill, never the counts.

    Most states are read after the decoding loop (see ``_newest_state``), outside its
    guard against shapes no check foresaw, so the same guard is here.
    """
    try:
        return bucket_state(record)
    except (MalformedRecordError, *UNEXPECTED_SHAPES) as exc:
        logger.info("bucket not refilled: unreadable state", extra={
            "event_id": record.event_id, "reason": skip_reason(exc),
        })
    return None


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


def _count_refill(result: BatchResult, won: bool) -> None:
    if won:
        result.refills_written += 1
    else:
        result.refills_lost_race += 1


def _refill_failed(result: BatchResult, pk: str, exc: StoreError) -> None:
    """A refill is an optimisation: the client's slow path refills on its own."""
    result.refills_failed += 1
    logger.warning("refill failed; the client's slow path will refill", extra={
        "pk": pk, "error_code": exc.code, "error": str(exc),
    })


def _event_id(raw: Any) -> str | None:
    value = raw.get("eventID") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def _sequence(raw: Any) -> str | None:
    body = raw.get("dynamodb") if isinstance(raw, dict) else None
    value = body.get("SequenceNumber") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None
