"""One batch of the projection: decode, coalesce per source item, write, report.

Built on the engine (:mod:`streamagg_engine.batch`): malformed records are logged with their
event id and skipped, writes run concurrently and are settled together, and a write that
fails (after the SDK's retries and this pipeline's retries of UnprocessedItems) fails the
records of every source item it carried; the lowest goes back to Lambda.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from streamagg_engine.batch import (
    UNEXPECTED_SHAPES,
    FailedRecords,
    FirstSeen,
    Job,
    isolate_rejected,
    log_rejected,
    log_skipped,
    settle,
    write_failed,
)
from streamagg_engine.errors import MalformedRecordError, StoreError
from streamagg_engine.records import parse_record

from .config import ProjectionConfig
from .processor import Change, ItemWrites, WriteRequest, chunks, coalesce, decode_change, requests
from .stores import WriteOutcome
from .transform import key_of

logger = logging.getLogger(__name__)


class BatchWriter(Protocol):
    def write(self, requests: Sequence[dict[str, Any]]) -> WriteOutcome: ...


@dataclass
class BatchResult:
    records: int = 0
    skipped_malformed: int = 0
    """Records that could not be projected, or whose write DynamoDB refused."""
    ignored: int = 0
    """Records that change no dashboard item (pending items, non-analysed updates)."""
    duplicates_in_batch: int = 0
    """Records whose sequence number an earlier record of the same batch carried."""
    items_put: int = 0
    items_deleted: int = 0
    batch_write_calls: int = 0
    unprocessed_retries: int = 0
    failed_writes: int = 0
    """Chunks that failed, or left items unprocessed after every attempt."""
    failures: FailedRecords = field(default_factory=lambda: FailedRecords(ordered=True))

    def response(self) -> dict[str, list[dict[str, str]]]:
        return self.failures.response()

    def summary(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


def process_batch(raw_records: Sequence[Any], *, config: ProjectionConfig,
                  store: BatchWriter, pool: Executor) -> BatchResult:
    result = BatchResult(records=len(raw_records))
    changes, malformed = _decode(raw_records, config, result)
    items = coalesce(changes)
    counted = malformed | {r.position for w in items for r in w.records}
    result.ignored = sum(1 for c in changes if c.record.position not in counted)
    jobs: list[Job] = []
    for chunk in chunks(requests(items, config.sort_key)):
        jobs.append((pool.submit(_write_chunk, store, chunk),
                     partial(_written, result, chunk), partial(_chunk_failed, result, chunk)))
    settle(jobs)
    return result


@dataclass
class _ChunkOutcome:
    calls: int
    unprocessed: list[dict[str, Any]]
    rejected: list[tuple[WriteRequest, StoreError]]


def _write_chunk(store: BatchWriter, chunk: list[WriteRequest]) -> _ChunkOutcome:
    """A chunk's BatchWriteItem; one request DynamoDB refuses for what it carries (it
    would be refused on every attempt) is isolated by splitting, the rest written."""
    isolated = isolate_rejected(chunk, lambda part: store.write([r.request for r in part]))
    outcomes: list[WriteOutcome] = isolated.results
    return _ChunkOutcome(
        calls=sum(o.calls for o in outcomes) + isolated.requests - len(outcomes),
        unprocessed=[r for o in outcomes for r in o.unprocessed],
        rejected=isolated.rejected)


def _decode(raw_records: Sequence[Any], config: ProjectionConfig,
            result: BatchResult) -> tuple[list[Change], set[str]]:
    """The batch's changes, and the positions of those whose new image was malformed.

    A record delivered twice in the batch (same sequence number) is decoded once.
    """
    changes = []
    malformed = set()
    seen = FirstSeen()
    for raw in raw_records:
        try:
            record = parse_record(raw, config.source_partition_key)
            if not seen.first(record.position):
                result.duplicates_in_batch += 1
                continue
            change, problem = decode_change(record, config)
        except (MalformedRecordError, *UNEXPECTED_SHAPES) as exc:
            result.skipped_malformed += 1
            log_skipped(logger, exc, record_id=_event_id(raw))
            continue
        if problem is not None:
            result.skipped_malformed += 1
            malformed.add(record.position)
            log_skipped(logger, problem, record_id=record.event_id,
                        sequence_number=record.sequence_number,
                        source_item=change.source_item)
        changes.append(change)
    return changes, malformed


def _written(result: BatchResult, chunk: list[WriteRequest], outcome: _ChunkOutcome) -> None:
    result.batch_write_calls += outcome.calls
    result.unprocessed_retries += outcome.calls - 1
    left = {key_of(_key_part(r)) for r in outcome.unprocessed}
    refused = {id(request) for request, _ in outcome.rejected}
    for request, exc in outcome.rejected:
        records = request.owner.records
        result.skipped_malformed += 1
        log_rejected(logger, exc, record_id=records[-1].event_id,
                     sequence_number=records[-1].sequence_number,
                     source_item=request.owner.source_item, key=list(request.key))
    for request in chunk:
        if request.key in left or id(request) in refused:
            continue
        if "PutRequest" in request.request:
            result.items_put += 1
        else:
            result.items_deleted += 1
    if left:
        failed = [r for r in chunk if r.key in left]
        _fail(result, failed, StoreError(
            f"dashboard batch write: {len(left)} item(s) still unprocessed after "
            f"{outcome.calls} attempts", retryable=True, code="UnprocessedItems"))


def _chunk_failed(result: BatchResult, chunk: list[WriteRequest], exc: StoreError) -> None:
    result.batch_write_calls += 1
    _fail(result, chunk, exc)


def _fail(result: BatchResult, failed: list[WriteRequest], exc: StoreError) -> None:
    """Every record of every source item the failed requests belong to goes back."""
    owners: dict[int, ItemWrites] = {id(r.owner): r.owner for r in failed}
    carried = [pair for owner in owners.values() for pair in owner.carried]
    result.failed_writes += 1
    write_failed(logger, result.failures, carried, "dashboard",
                 f"{len(failed)} request(s) of {len(owners)} source item(s)")(exc)


def _key_part(request: dict[str, Any]) -> dict[str, Any]:
    if "PutRequest" in request:
        item: dict[str, Any] = request["PutRequest"]["Item"]
        return item
    key: dict[str, Any] = request["DeleteRequest"]["Key"]
    return key


def _event_id(raw: Any) -> str | None:
    value = raw.get("eventID") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None
