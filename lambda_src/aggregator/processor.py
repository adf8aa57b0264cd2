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
from typing import NamedTuple

from streamagg_engine.ddb_json import Image, get_integer, get_string
from streamagg_engine.errors import MalformedRecordError
from streamagg_engine.records import StreamRecord
from streamagg_engine.windows import HOUR_MS, Window, window_keys

from .config import AggregatorConfig


class SnapshotKey(NamedTuple):
    """A snapshot item's identity; a tuple, so it is also the cheapest dictionary key."""

    namespace: str
    entity: str
    resource: str
    window: Window
    window_key: str


@dataclass(slots=True)
class Contribution:
    """What one record adds to one snapshot item (shared by its windows; never changed).

    This and :class:`CounterChange` are built once per record, so they are plain slotted
    classes: a frozen dataclass's ``__init__`` costs several times as much.
    """

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

    def records(self) -> list[str]:
        """Sequence numbers of the records inside (a failed write fails these)."""
        return [c.sequence_number for items in self.by_source.values() for c in items]


@dataclass(slots=True)
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


class CounterAttributes:
    """Which attributes of an image are counters, worked out once per image *shape*.

    Every bucket item of a table has the same few attribute names, so matching each name
    against ``counter_attribute`` for every record is wasted work: the answer is cached
    per tuple of names (in image order, so a malformed counter is still the first one
    reported), and the hot path reads only the counters, never the whole image.
    """

    __slots__ = ("_shapes", "config")
    _MAX_SHAPES = 256

    def __init__(self, config: AggregatorConfig) -> None:
        self.config = config
        self._shapes: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}

    def of(self, image: Image) -> tuple[tuple[str, str], ...]:
        """``(attribute, limit name)`` of each counter in ``image``, in image order."""
        shape = tuple(image)
        found = self._shapes.get(shape)
        if found is None:
            if len(self._shapes) >= self._MAX_SHAPES:
                self._shapes.clear()
            counter_name = self.config.counter_name
            found = tuple(
                (attribute, limit) for attribute in shape
                if (limit := counter_name(attribute)) is not None
            )
            self._shapes[shape] = found
        return found


_COUNTER_ATTRIBUTES: dict[int, CounterAttributes] = {}


def counter_attributes(config: AggregatorConfig) -> CounterAttributes:
    """The (cached) counter lookup for ``config``; configurations live per container."""
    found = _COUNTER_ATTRIBUTES.get(id(config))
    if found is None or found.config is not config:
        if len(_COUNTER_ATTRIBUTES) >= 16:
            _COUNTER_ATTRIBUTES.clear()
        found = _COUNTER_ATTRIBUTES[id(config)] = CounterAttributes(config)
    return found


def decode_change(
    record: StreamRecord, config: AggregatorConfig, namespace: str | None = None
) -> CounterChange | None:
    """The counters a source record moved, or None when it moved none.

    INSERT counts from zero: a bucket's first consumption arrives as an INSERT that
    already carries it. REMOVE changes no counter. On MODIFY a counter present in only
    one image is skipped: it was added or dropped by a configuration change, not by
    consumption. ``namespace`` saves splitting the partition key again when known.
    """
    event_name = record.event_name
    if event_name == "REMOVE":
        return None
    new = record.new_image
    if new is None:
        raise MalformedRecordError("no NewImage: the stream view type must be NEW_AND_OLD_IMAGES")
    old = record.old_image
    if event_name == "MODIFY" and old is None:
        raise MalformedRecordError("MODIFY without OldImage: the stream must include old images")
    entity = get_string(new, config.entity_attribute)
    if not entity:
        raise MalformedRecordError(f"missing {config.entity_attribute}")
    resource = get_string(new, config.resource_attribute)
    if not resource:
        raise MalformedRecordError(f"missing {config.resource_attribute}")
    inserted = event_name == "INSERT"
    millis: dict[str, tuple[int, int]] = {}
    for attribute, limit in counter_attributes(config).of(new):
        after = get_integer(new, attribute)
        before = 0 if inserted else get_integer(old or {}, attribute)
        if after is None or before is None or after == before:
            continue
        millis[limit] = (before, after)
    if not millis:
        return None
    return CounterChange(
        record.partition_key + "|" + (get_string(record.keys, "SK") or ""),
        record.namespace_and_rest[0] if namespace is None else namespace,
        entity,
        resource,
        millis,
    )


def whole_tokens(millis: Mapping[str, tuple[int, int]], scale: int) -> dict[str, int]:
    """Per limit, the change of the whole-token floor (see the module docstring)."""
    tokens = {}
    for name, (before, after) in millis.items():
        # A loop, not a comprehension: this runs once per record, and the loop is faster.
        delta = after // scale - before // scale
        if delta:
            tokens[name] = delta
    return tokens


def plan_snapshots(
    changes: Iterable[tuple[StreamRecord, CounterChange]], config: AggregatorConfig
) -> list[SnapshotUpdate]:
    """Group contributions per snapshot item; records must come in stream order.

    A source item feeds the same few snapshot items (one per window) for a whole hour, so
    the lists its contributions go to are looked up once per (source, hour) and cached:
    a record then costs one dictionary lookup and one append per window.
    """
    updates: dict[SnapshotKey, SnapshotUpdate] = {}
    targets: dict[tuple[str, str, str, str, int], list[list[Contribution]]] = {}
    scale = config.counter_scale
    windows = config.snapshot_windows
    for record, change in changes:
        hour = record.created_ms // HOUR_MS
        lists = targets.get((change.source_key, change.namespace, change.entity,
                             change.resource, hour))
        if lists is None:
            lists = _contribution_lists(updates, change, windows, window_keys(record.created_ms))
            targets[change.source_key, change.namespace, change.entity, change.resource,
                    hour] = lists
        contribution = Contribution(
            record.position, record.sequence_number, whole_tokens(change.millis, scale)
        )
        for contributions in lists:
            contributions.append(contribution)
    return list(updates.values())


def _contribution_lists(
    updates: dict[SnapshotKey, SnapshotUpdate], change: CounterChange,
    windows: tuple[Window, ...], keys: Mapping[Window, str],
) -> list[list[Contribution]]:
    """The source's contribution list in each window's update, created when missing."""
    lists = []
    for window in windows:
        item = SnapshotKey(change.namespace, change.entity, change.resource, window, keys[window])
        update = updates.get(item)
        if update is None:
            update = updates[item] = SnapshotUpdate(item, {})
        contributions = update.by_source.get(change.source_key)
        if contributions is None:
            contributions = update.by_source[change.source_key] = []
        lists.append(contributions)
    return lists
