"""Audit records to gzip JSON Lines objects with deterministic keys (pure: no I/O).

An object's key is derived from the records in it (their partition day and sequence
range), never from the clock or the request id, so a redelivered batch overwrites its
own object instead of writing a second copy. The gzip header carries no timestamp, so
the bytes are the same too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from streamagg_engine.bounds import parse_instant
from streamagg_engine.ddb_json import PlainValue, to_plain
from streamagg_engine.errors import MalformedRecordError
from streamagg_engine.jsonl import encode_jsonl
from streamagg_engine.records import StreamRecord

from .config import AggregatorConfig

_TTL_PRINCIPAL = "dynamodb.amazonaws.com"
_AUDIT_FIELDS = ("event_id", "entity_id", "action", "timestamp", "principal", "resource")


@dataclass(frozen=True, slots=True)
class ArchiveLine:
    record: StreamRecord
    day: tuple[int, int, int]
    """(year, month, day) of the audit event's own timestamp: the Hive partition."""
    line: dict[str, PlainValue]


@dataclass(frozen=True, slots=True)
class ArchiveObject:
    key: str
    body: bytes
    records: tuple[StreamRecord, ...]
    """The stream records inside, in stream order: a failed PUT fails these."""


def is_archivable(record: StreamRecord, config: AggregatorConfig) -> bool:
    """REMOVE records whose PK, after any namespace, starts with the archive marker."""
    if record.event_name != "REMOVE":
        return False
    return record.namespace_and_rest[1].startswith(config.archive_key_marker)


def extract_line(record: StreamRecord) -> ArchiveLine:
    """One archive line from an audit item's last image, or MalformedRecordError."""
    if record.old_image is None:
        raise MalformedRecordError("REMOVE without OldImage: the stream must include old images")
    image = to_plain(record.old_image)
    action = image.get("action")
    if not isinstance(action, str) or not action:
        raise MalformedRecordError("audit record has no action")
    line: dict[str, PlainValue] = {"namespace": record.namespace_and_rest[0]}
    for name in _AUDIT_FIELDS:
        line[name] = image.get(name)
    details = image.get("details")
    line["details"] = details if isinstance(details, dict) else {}
    line["removal"] = "ttl" if _is_ttl_removal(record.user_identity) else "manual"
    line["removed_at"] = _iso(record.created_ms)
    line["sequence_number"] = record.sequence_number
    line["stream_event_id"] = record.event_id
    return ArchiveLine(record=record, day=_event_day(image.get("timestamp"), record), line=line)


def build_objects(lines: Iterable[ArchiveLine], prefix: str) -> list[ArchiveObject]:
    """One object per partition day, lines in stream order."""
    by_day: dict[tuple[int, int, int], list[ArchiveLine]] = defaultdict(list)
    for line in lines:
        by_day[line.day].append(line)
    objects = []
    for (year, month, day), group in sorted(by_day.items()):
        group.sort(key=lambda entry: entry.record.position)
        first, last = group[0].record, group[-1].record
        key = (
            f"{prefix}year={year:04d}/month={month:02d}/day={day:02d}/"
            f"audit-{_safe(first.created_ms)}-{first.sequence_number}-{last.sequence_number}"
            ".jsonl.gz"
        )
        objects.append(ArchiveObject(
            key=key,
            body=encode_jsonl(entry.line for entry in group),
            records=tuple(entry.record for entry in group),
        ))
    return objects


def _is_ttl_removal(identity: Mapping[str, Any] | None) -> bool:
    if not identity:
        return False
    return identity.get("type") == "Service" and identity.get("principalId") == _TTL_PRINCIPAL


def _event_day(timestamp: PlainValue, record: StreamRecord) -> tuple[int, int, int]:
    """The audit event's own day; its removal time when the timestamp is unusable.

    Unusable includes a time the windows cannot represent (``0001-01-01T00:00:00+01:00``
    is before the year 1 in UTC): the record is still archived, under its removal day.
    """
    when: datetime | None = None
    if isinstance(timestamp, str):
        try:
            when = parse_instant(timestamp, "timestamp", naive_utc=True)
        except MalformedRecordError:
            when = None
    if when is None:
        when = datetime.fromtimestamp(record.created_ms // 1000, tz=UTC)
    return (when.year, when.month, when.day)


def _iso(epoch_ms: int) -> str:
    return _iso_second(epoch_ms // 1000)


@lru_cache(maxsize=1024)
def _iso_second(epoch_s: int) -> str:
    """Cached: a batch's records share a few seconds."""
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _safe(epoch_ms: int) -> str:
    """A timestamp fit for a file name: no colons, no plus signs."""
    return _iso(epoch_ms).replace(":", "").replace("+", "").replace("-", "")
