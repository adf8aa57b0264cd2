"""Stream records to coalesced snapshot updates (pure: no I/O, no clock).

A source item (a zae-limiter bucket) keeps cumulative counters (``b_{limit}_tc``, in
millitokens). A record's contribution to a limit is the change of the counter's
*whole-token floor*: ``floor(new / scale) - floor(old / scale)``. Summed over a run of
records this telescopes to ``floor(last / scale) - floor(first / scale)``, so fractional
millitokens are never lost, across records or batches: the token a fraction completes is
counted in the window where it completes.

Every contribution is kept with its source item and stream position, grouped per
snapshot item. The store applies an item's contributions in one ``UpdateItem``, with a
per-source watermark that makes redelivered records no-ops (see ``stores.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .config import AggregatorConfig
from .ddb_json import Image, get_integer, get_string
from .errors import MalformedRecordError
from .records import StreamRecord
from .windows import Window, window_key


@dataclass(frozen=True, slots=True)
class SnapshotKey:
    namespace: str
    entity: str
    resource: str
    window: Window
    window_key: str


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one record adds to one snapshot item."""

    position: str
    sequence_number: str
    counters: Mapping[str, int]
    """Whole tokens per limit; zero entries are kept out."""


@dataclass(slots=True)
class SnapshotUpdate:
    key: SnapshotKey
    by_source: dict[str, list[Contribution]] = field(default_factory=dict)
    """Source item key → its contributions in stream order."""

    def pending(self, applied: Mapping[str, str]) -> SnapshotUpdate:
        """Only the contributions newer than each source's stored watermark."""
        kept = {
            source: [c for c in items if c.position > applied.get(source, "")]
            for source, items in self.by_source.items()
        }
        return SnapshotUpdate(self.key, {s: items for s, items in kept.items() if items})

    def totals(self) -> tuple[dict[str, int], int]:
        """Summed counters (zeros dropped) and the number of events."""
        counters: dict[str, int] = {}
        events = 0
        for items in self.by_source.values():
            events += len(items)
            for contribution in items:
                for name, amount in contribution.counters.items():
                    counters[name] = counters.get(name, 0) + amount
        return {k: v for k, v in counters.items() if v}, events

    def watermarks(self) -> dict[str, str]:
        """Each source's newest position in this update."""
        return {source: items[-1].position for source, items in self.by_source.items()}

    def records(self) -> list[str]:
        """Sequence numbers of the records inside (a failed write fails these)."""
        return [c.sequence_number for items in self.by_source.values() for c in items]


@dataclass(frozen=True, slots=True)
class CounterChange:
    """A source record's decoded effect: who, what, and how much per limit."""

    source_key: str
    namespace: str
    entity: str
    resource: str
    millis: Mapping[str, tuple[int, int]]
    """Limit name → (old, new) cumulative counter, in stored units."""


def is_source_record(record: StreamRecord, config: AggregatorConfig) -> bool:
    return record.namespace_and_rest[1].startswith(config.source_key_marker)


def decode_change(record: StreamRecord, config: AggregatorConfig) -> CounterChange | None:
    """The counters a source record moved, or None when it moved none.

    INSERT counts from zero: a bucket's first consumption arrives as an INSERT that
    already carries it. REMOVE changes no counter. On MODIFY a counter present in only
    one image is skipped: it was added or dropped by a configuration change, not by
    consumption.
    """
    if record.event_name == "REMOVE":
        return None
    new = record.new_image
    if new is None:
        raise MalformedRecordError("no NewImage: the stream view type must be NEW_AND_OLD_IMAGES")
    old = record.old_image
    if record.event_name == "MODIFY" and old is None:
        raise MalformedRecordError("MODIFY without OldImage: the stream must include old images")
    entity = get_string(new, config.entity_attribute)
    if not entity:
        raise MalformedRecordError(f"missing {config.entity_attribute}")
    resource = get_string(new, config.resource_attribute)
    if not resource:
        raise MalformedRecordError(f"missing {config.resource_attribute}")
    millis = _counter_pairs(new, old, inserted=record.event_name == "INSERT", config=config)
    if not millis:
        return None
    return CounterChange(
        source_key=record.partition_key + "|" + (get_string(record.keys, "SK") or ""),
        namespace=record.namespace_and_rest[0],
        entity=entity,
        resource=resource,
        millis=millis,
    )


def _counter_pairs(
    new: Image, old: Image | None, *, inserted: bool, config: AggregatorConfig
) -> dict[str, tuple[int, int]]:
    pairs: dict[str, tuple[int, int]] = {}
    for attribute in new:
        limit = config.counter_name(attribute)
        if limit is None:
            continue
        after = get_integer(new, attribute)
        before = 0 if inserted else get_integer(old or {}, attribute)
        if after is None or before is None or after == before:
            continue
        pairs[limit] = (before, after)
    return pairs


def whole_tokens(millis: Mapping[str, tuple[int, int]], scale: int) -> dict[str, int]:
    """Per limit, the change of the whole-token floor (see the module docstring)."""
    return {
        name: after // scale - before // scale
        for name, (before, after) in millis.items()
        if after // scale != before // scale
    }


def plan_snapshots(
    changes: Iterable[tuple[StreamRecord, CounterChange]], config: AggregatorConfig
) -> list[SnapshotUpdate]:
    """Group contributions per snapshot item; records must come in stream order."""
    updates: dict[SnapshotKey, SnapshotUpdate] = {}
    for record, change in changes:
        contribution = Contribution(
            position=record.position,
            sequence_number=record.sequence_number,
            counters=whole_tokens(change.millis, config.counter_scale),
        )
        for window in config.snapshot_windows:
            key = SnapshotKey(
                namespace=change.namespace,
                entity=change.entity,
                resource=change.resource,
                window=window,
                window_key=window_key(record.created_ms, window),
            )
            update = updates.get(key)
            if update is None:
                update = updates[key] = SnapshotUpdate(key)
            update.by_source.setdefault(change.source_key, []).append(contribution)
    return list(updates.values())
