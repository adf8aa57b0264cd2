"""Stream records to coalesced snapshot updates (pure: no I/O, no clock).

A source item (a zae-limiter bucket) keeps cumulative counters (``b_{limit}_tc``, in
millitokens). A record's contribution to a limit is the change of the counter's
*whole-token floor*: ``floor(new / scale) - floor(old / scale)``. Summed over a run of
records this telescopes to ``floor(last / scale) - floor(first / scale)``, so fractional
millitokens are never lost, across records or batches: the token a fraction completes is
counted in the window where it completes.

Every contribution is kept with its source item, stream position and the source's
counters before and after it, grouped per snapshot item. The store applies an item's
contributions in one ``UpdateItem``; what the item already counted of each source
(``chain.py``) makes redelivered records no-ops and lets a late replay, or the counters
themselves, fill what was never counted.

Besides the counters, a record carries what only the record itself can say: its events
(one per limit it moved, as zae-limiter's reader counts ``total_events``) and its *marks*:
``{limit}#od`` when it debited a soft limit into debt (zae-limiter 0.17's overdraw signal,
read by its reader as ``UsageSnapshot.overdrawn``). Neither follows from cumulative
counters, so a gap (``chain.py``) adds neither until its records are replayed.

Two bucket layouts are sources: zae-limiter 0.9+'s ``{ns}/BUCKET#{entity}#{resource}#{shard}``
and the pre-0.9 ``{ns}/ENTITY#{entity}`` with sort key ``#BUCKET#{resource}`` (a table in
the middle of 0.9's migration holds both). A key without a namespace is from before 0.7's
namespaces: it is skipped, and reported as such.
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
    before: Mapping[str, int] | None
    """Every counter of the source before the record (None for an INSERT)."""
    after: Mapping[str, int]
    """Every counter of the source after the record."""
    events: int
    """What the record adds to ``total_events``: one per limit it moved."""
    marks: Mapping[str, int]
    """Per-record counters no cumulative counter can rebuild (``{limit}#od``)."""


@dataclass(slots=True)
class SnapshotUpdate:
    key: SnapshotKey
    by_source: dict[str, list[Contribution]] = field(default_factory=dict)
    """Source item key → its contributions in stream order, one per record."""

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
    """Limit name → (old, new) cumulative counter, in stored units, where it moved."""
    before: Mapping[str, int] | None
    """Every counter in the old image (None for an INSERT: a new chain)."""
    after: Mapping[str, int]
    """Every counter in the new image."""
    marks: Mapping[str, int] = field(default_factory=dict)
    """``{limit}#od``: 1 per soft limit the record debited into debt."""


OVERDRAWN_SUFFIX = "#od"
"""zae-limiter's overdraw counter, ``{limit}#od`` (``#`` cannot occur in a limit name)."""
SOFT_ATTRIBUTE = "b_{limit}_soft"
"""zae-limiter 0.17 stamps a soft limit's bucket with this (metered, never enforced)."""
BALANCE_ATTRIBUTE = "b_{limit}_tk"
"""The bucket's balance in millitokens; below zero after a debit means debt."""
LEGACY_SOURCE_MARKER = "ENTITY#"
LEGACY_SOURCE_SK = "#BUCKET#"
"""A pre-0.9 bucket: ``{ns}/ENTITY#{entity}``, ``#BUCKET#{resource}``."""


def is_source_record(record: StreamRecord, config: AggregatorConfig) -> bool:
    return is_source_key(record.namespace_and_rest[1], record, config)


def is_source_key(rest: str, record: StreamRecord, config: AggregatorConfig) -> bool:
    """The record is a bucket's, in either layout (``rest``: its PK after the namespace)."""
    if rest.startswith(config.source_key_marker):
        return True
    return rest.startswith(LEGACY_SOURCE_MARKER) and \
        (get_string(record.keys, "SK") or "").startswith(LEGACY_SOURCE_SK)


class CounterAttributes:
    """Which attributes of an image are counters, worked out once per image *shape*.

    Every bucket item of a table has the same few attribute names, so matching each name
    against ``counter_attribute`` for every record is wasted work: the answer is cached
    per tuple of names (in image order, so a malformed counter is still the first one
    reported), and the hot path reads only the counters, never the whole image. The
    shape also says which limits are soft (``b_{limit}_soft``), so a table without soft
    limits pays nothing for the overdraw signal.
    """

    __slots__ = ("_shapes", "config")
    _MAX_SHAPES = 256

    def __init__(self, config: AggregatorConfig) -> None:
        self.config = config
        self._shapes: dict[tuple[str, ...], tuple[tuple[tuple[str, str], ...],
                                                  frozenset[str]]] = {}

    def of(self, image: Image) -> tuple[tuple[str, str], ...]:
        """``(attribute, limit name)`` of each counter in ``image``, in image order."""
        return self.read(image)[0]

    def read(self, image: Image) -> tuple[tuple[tuple[str, str], ...], frozenset[str]]:
        """The counters (as :meth:`of`) and the names of the soft limits of ``image``."""
        shape = tuple(image)
        found = self._shapes.get(shape)
        if found is None:
            if len(self._shapes) >= self._MAX_SHAPES:
                self._shapes.clear()
            counter_name = self.config.counter_name
            counters = tuple(
                (attribute, limit) for attribute in shape
                if (limit := counter_name(attribute)) is not None
            )
            soft = frozenset(limit for _, limit in counters
                             if SOFT_ATTRIBUTE.format(limit=limit) in image)
            found = self._shapes[shape] = (counters, soft)
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
    if namespace is None:
        namespace = record.namespace_and_rest[0]
    if not namespace:
        raise MalformedRecordError("key without a namespace (a pre-0.7 layout): migrate it")
    resource = get_string(new, config.resource_attribute) or resource_from_key(
        record, entity, config)
    if not resource:
        raise MalformedRecordError(f"missing {config.resource_attribute}")
    inserted = event_name == "INSERT"
    lookup = counter_attributes(config)
    millis: dict[str, tuple[int, int]] = {}
    after_all: dict[str, int] = {}
    before_all: dict[str, int] | None = None if inserted else {}
    counters, soft = lookup.read(new)
    for attribute, limit in counters:
        after = get_integer(new, attribute)
        if after is None:
            continue
        after_all[limit] = after
        before = 0 if inserted else get_integer(old or {}, attribute)
        if before is None or after == before:
            continue
        millis[limit] = (before, after)
    if not millis:
        return None
    marks = _overdrawn(new, millis, soft) if soft else {}
    if before_all is not None and old is not None:
        # The whole old state: a counter the new image dropped still ends the chain there.
        for attribute, limit in lookup.of(old):
            value = get_integer(old, attribute)
            if value is not None:
                before_all[limit] = value
    return CounterChange(
        record.partition_key + "|" + (get_string(record.keys, "SK") or ""),
        namespace, entity, resource, millis, before_all, after_all, marks,
    )


def resource_from_key(record: StreamRecord, entity: str, config: AggregatorConfig) -> str:
    """The resource a bucket's key names, as zae-limiter reads it when the image has none.

    ``BUCKET#{entity}#{resource}#{shard}``, or a pre-0.9 ``#BUCKET#{resource}`` sort key;
    "" when the key names none.
    """
    rest = record.namespace_and_rest[1]
    if rest.startswith(config.source_key_marker):
        body, _, shard = rest[len(config.source_key_marker):].rpartition("#")
        prefix = entity + "#"
        if shard.isdigit() and body.startswith(prefix):
            return body[len(prefix):]
        return ""
    sort_key = get_string(record.keys, "SK") or ""
    return sort_key[len(LEGACY_SOURCE_SK):] if sort_key.startswith(LEGACY_SOURCE_SK) else ""


def _overdrawn(new: Image, millis: Mapping[str, tuple[int, int]],
               soft: frozenset[str]) -> dict[str, int]:
    """``{limit}#od: 1`` per soft limit this record debited that was left in debt.

    Read off the new image alone, as zae-limiter's aggregator does: the soft stamp is
    present (whatever its deadline), the counter grew, and the balance is below zero.
    """
    marks = {}
    for limit in soft:
        moved = millis.get(limit)
        if moved is not None and moved[1] > moved[0]:
            balance = get_integer(new, BALANCE_ATTRIBUTE.format(limit=limit))
            if balance is not None and balance < 0:
                marks[limit + OVERDRAWN_SUFFIX] = 1
    return marks


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
    a record then costs one dictionary lookup and one append per window. The same record
    twice in a batch (same position) is kept once.
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
        if lists and lists[0] and lists[0][-1].position == record.position:
            continue  # delivered twice in one batch: records in stream order sit side by side
        contribution = Contribution(
            record.position, record.sequence_number, whole_tokens(change.millis, scale),
            change.before, change.after, len(change.millis), change.marks,
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
