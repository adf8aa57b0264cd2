"""One Kinesis batch, end to end: decode, validate, enrich, count, archive, report.

Data problems never raise: a record with bad base64, bad JSON, a schema violation or an
unknown experiment is logged with its event id and reason, counted, and skipped; the
rest of the batch proceeds. A write that fails after the SDK's retries fails the records
it carried and the lowest of them is reported in ``batchItemFailures``, so Lambda
retries from there; the markers make the redelivered events that had been counted no-ops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from streamagg_engine.batch import (
    UNEXPECTED_SHAPES,
    FailedRecords,
    Job,
    isolate_rejected,
    log_rejected,
    log_skipped,
    settle,
    write_failed,
)
from streamagg_engine.errors import MalformedRecordError, StoreError
from streamagg_engine.jsonl import CONTENT_ENCODING, CONTENT_TYPE
from streamagg_engine.limits import check_key

from .config import EventMetricsConfig
from .enrich import Lookups, enrich, keys_for
from .kinesis import KinesisRecord, decode_document, parse_record
from .processor import (
    ArchiveObject,
    Counted,
    Transaction,
    UserSetUpdate,
    counter_keys,
    plan_archive,
    plan_transactions,
    plan_user_sets,
)
from .schema import Event, Field, event_schema, validate

logger = logging.getLogger(__name__)


class CounterWriter(Protocol):
    def commit(self, transaction: Transaction, now_ms: int) -> int: ...
    def add_users(self, update: UserSetUpdate) -> None: ...


class ArchiveWriter(Protocol):
    def put(self, key: str, body: bytes, *, content_type: str, content_encoding: str,
            metadata: Mapping[str, str] | None = None) -> None: ...


@dataclass(frozen=True)
class Stores:
    """The ports a batch reads and writes through (``events/stores.py`` has the adapters)."""

    lookups: Lookups
    metrics: CounterWriter
    archive: ArchiveWriter | None
    """None when archival is off."""


@dataclass
class BatchResult:
    records: int = 0
    skipped_malformed: int = 0
    """Every skipped record: bad envelope, base64, JSON, schema, unknown experiment, or a
    write DynamoDB refused for what the record carried."""
    unknown_experiments: int = 0
    """Of ``skipped_malformed``: valid events of an experiment the lookup table lacks."""
    duplicates_in_batch: int = 0
    """Events whose id an earlier record of the same batch already carried."""
    counted_events: int = 0
    already_counted: int = 0
    """Events whose marker existed: redelivered, retried, or sent twice by a producer."""
    transactions: int = 0
    user_set_writes: int = 0
    archived_events: int = 0
    archive_objects: int = 0
    failed_writes: int = 0
    parse_errors: int = 0
    """Records skipped before their JSON: a bad envelope, base64 or JSON."""
    validation_errors: int = 0
    """Records skipped for breaking the event schema."""
    enrichment_errors: int = 0
    """Records skipped at enrichment (unknown experiment, keys over DynamoDB's limits), or
    handed back because the lookup read failed."""
    aggregation_errors: int = 0
    """Events whose counter or unique-user write failed (handed back) or was refused
    (skipped)."""
    archive_errors: int = 0
    """Events whose archive put failed (handed back) or was refused (skipped)."""
    failures: FailedRecords = field(default_factory=lambda: FailedRecords(ordered=True))

    def summary(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}

    def response(self) -> dict[str, list[dict[str, str]]]:
        return self.failures.response()


def process_batch(raw_records: Sequence[Any], *, config: EventMetricsConfig,
                  stores: Stores, pool: Executor, now_ms: int) -> BatchResult:
    result = BatchResult(records=len(raw_records))
    decoded = _decode(raw_records, event_schema(config.event_types), result)
    if not decoded:
        return result
    try:
        found = stores.lookups.fetch(keys_for(event for _, event in decoded))
    except StoreError as exc:
        # A read refused for what it asked is a table that does not match the settings,
        # not a record's fault: the batch fails and is retried, whatever the error class.
        result.failed_writes += 1
        result.enrichment_errors += len(decoded)
        write_failed(logger, result.failures, [(r.position, r.sequence_number)
                                               for r, _ in decoded], "lookup", "lookup")(exc)
        return result
    counted: list[Counted] = []
    for record, event in decoded:
        try:
            item = Counted(record, enrich(event, found))
            _check_keys(item, config)
        except (MalformedRecordError, *UNEXPECTED_SHAPES) as exc:
            result.skipped_malformed += 1
            result.enrichment_errors += 1
            if isinstance(exc, MalformedRecordError) and \
                    exc.reason.startswith("unknown experiment"):
                result.unknown_experiments += 1
            log_skipped(logger, exc, record_id=record.event_id,
                        sequence_number=record.sequence_number)
            continue
        counted.append(item)

    jobs: list[Job] = []
    for lane in plan_transactions(counted, config):
        jobs.append((pool.submit(_commit_lane, stores.metrics, lane, now_ms),
                     partial(_lane_done, result), _failing(result, _carried(lane), "counter")))
    for update in plan_user_sets(counted, config):
        jobs.append((pool.submit(stores.metrics.add_users, update),
                     partial(_users_done, result), _failing(result, list(update.carried),
                                                            "unique-user")))
    if stores.archive is not None and counted:
        for obj in plan_archive(counted, config, counted[0].record.shard_id):
            jobs.append((pool.submit(stores.archive.put, obj.key, obj.body,
                                     content_type=CONTENT_TYPE,
                                     content_encoding=CONTENT_ENCODING,
                                     metadata=obj.metadata),
                         partial(_archived, result, obj),
                         _failing(result, [e.carried for e in obj.events], "archive")))
    settle(jobs)
    return result


def _decode(raw_records: Sequence[Any], schema: tuple[Field, ...],
            result: BatchResult) -> list[tuple[KinesisRecord, Event]]:
    """Valid events in stream order, the first record of each event id only."""
    decoded: list[tuple[KinesisRecord, Event]] = []
    seen: set[str] = set()
    for raw in raw_records:
        record: KinesisRecord | None = None
        validating = False
        try:
            record = parse_record(raw)
            document = decode_document(record)
            validating = True
            event = validate(document, schema)
        except (MalformedRecordError, *UNEXPECTED_SHAPES) as exc:
            result.skipped_malformed += 1
            if validating:
                result.validation_errors += 1
            else:
                result.parse_errors += 1
            log_skipped(logger, exc, record_id=_event_id(raw, record),
                        sequence_number=record.sequence_number if record else None)
            continue
        if event.event_id in seen:
            result.duplicates_in_batch += 1
            continue
        seen.add(event.event_id)
        decoded.append((record, event))
    decoded.sort(key=lambda pair: pair[0].position)
    return decoded


def _check_keys(item: Counted, config: EventMetricsConfig) -> None:
    """The keys the event's writes would use, within DynamoDB's limits.

    Ids are checked by the schema (128 ASCII characters); the variant comes from the
    lookup table, unchecked until here, and ends up in every sort key.
    """
    for key in counter_keys(item, config.windows):
        check_key(key.pk, config.partition_key)
        check_key(f"{key.sk}#USERS#000", config.sort_key, sort=True)


@dataclass
class _LaneOutcome:
    committed: int = 0
    counted: int = 0
    already_counted: int = 0
    failed: list[tuple[Transaction, StoreError]] = field(default_factory=list)
    rejected: list[tuple[Counted, StoreError]] = field(default_factory=list)


def _commit_lane(metrics: CounterWriter, lane: list[Transaction], now_ms: int) -> _LaneOutcome:
    """A lane's transactions in order; one failing does not stop the others.

    A transaction DynamoDB refuses for what it carries is split until the refused
    event stands alone: the others are counted, the refused one is skipped.
    """
    outcome = _LaneOutcome()
    for transaction in lane:
        def commit(events: Sequence[Counted], windows: Any = transaction.windows) -> int:
            return metrics.commit(Transaction(tuple(events), windows), now_ms)
        try:
            isolated = isolate_rejected(transaction.events, commit)
        except StoreError as exc:
            outcome.failed.append((transaction, exc))
            continue
        outcome.committed += len(isolated.results)
        duplicates = sum(isolated.results)
        outcome.counted += len(transaction.events) - len(isolated.rejected) - duplicates
        outcome.already_counted += duplicates
        outcome.rejected += isolated.rejected
    return outcome


def _lane_done(result: BatchResult, outcome: _LaneOutcome) -> None:
    result.transactions += outcome.committed
    result.counted_events += outcome.counted
    result.already_counted += outcome.already_counted
    for transaction, exc in outcome.failed:
        _failing(result, transaction.carried(), "counter")(exc)
    for item, exc in outcome.rejected:
        result.skipped_malformed += 1
        result.aggregation_errors += 1
        log_rejected(logger, exc, record_id=item.record.event_id,
                     sequence_number=item.record.sequence_number)


def _carried(lane: list[Transaction]) -> list[tuple[str, str]]:
    return [pair for transaction in lane for pair in transaction.carried()]


def _users_done(result: BatchResult, _: None) -> None:
    result.user_set_writes += 1


def _archived(result: BatchResult, obj: ArchiveObject, _: None) -> None:
    result.archive_objects += 1
    result.archived_events += len(obj.events)


def _failing(result: BatchResult, carried: list[tuple[str, str]],
             kind: str) -> Callable[[StoreError], None]:
    """A write's failure callback: its records go back to Lambda, unless the write was
    refused for what it carried (it would be refused again): then they are skipped."""
    report = write_failed(logger, result.failures, carried, kind, kind)

    def fail(exc: StoreError) -> None:
        if kind == "archive":
            result.archive_errors += len(carried)
        else:
            result.aggregation_errors += len(carried)
        if exc.permanent:
            result.skipped_malformed += len(carried)
            for _, sequence_number in carried:
                log_rejected(logger, exc, record_id=sequence_number, target=kind)
            return
        result.failed_writes += 1
        report(exc)
    return fail


def _event_id(raw: Any, record: KinesisRecord | None) -> str | None:
    if record is not None:
        return record.event_id
    value = raw.get("eventID") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None
