"""The usage aggregator's snapshot I/O: a narrow adapter over a client passed in (the
archive's is the engine's :class:`streamagg_engine.stores.ArchiveStore`; bucket
maintenance is zae-limiter's own, in ``maintenance.py``).

Exactly-once snapshots
----------------------
Each snapshot item keeps, per source item feeding it, the range of that source's stream
it has counted (``chain.py``) in string attributes named after a digest of the source
key: ``wm_`` the newest position counted (the *watermark*), ``wn_`` the source's counters
after it, ``wf_`` the oldest position counted and the counters before it, ``wg_`` the gaps
inside the range whose records were counted from the counters, not one by one.
Strings, so zae-limiter's reader, which counts every top-level *number*, never mistakes
them for counters.

The common write assumes the batch continues what the item holds: it ADDs every
contribution, conditioned per source on the watermark being older than the batch's first
record and on the stored counters being those the first record started from. When the
condition fails (a redelivery, a write that landed but whose response was lost, a
replay of a range given up earlier, records never counted), DynamoDB returns the stored
item, the batch is reconciled with what it holds exactly, and the write is retried
conditioned on that. What this container wrote last is remembered, so a redelivered
tail costs no request for items it already holds.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from streamagg_engine.errors import StoreError
from streamagg_engine.stores import to_store_error
from streamagg_engine.windows import window_end

from .chain import CountedRange, decode_gaps, encode_gaps, pack, reconcile, unpack
from .config import AggregatorConfig
from .keys import key_fields, snapshot_item_key
from .processor import Contribution, SnapshotKey, SnapshotUpdate
from .schema import VERSION_PK, VERSION_SK

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

WATERMARK_PREFIX = "wm_"
LAST_COUNTERS_PREFIX = "wn_"
FIRST_PREFIX = "wf_"
GAPS_PREFIX = "wg_"
_MAX_CONFLICTS = 8
NEVER_COUNTED = "records never counted"
"""The message of both gap lines (``kind`` tells them apart); a saved query selects it."""
_REMEMBERED_RANGES = 20_000
"""Per container: (item, source) ranges this container wrote, a few hundred bytes each."""


@lru_cache(maxsize=16_384)
def _digest(source_key: str) -> str:
    """Cached: a source feeds one item per window, batch after batch."""
    return hashlib.blake2b(source_key.encode(), digest_size=8).hexdigest()



def range_attributes(source_key: str) -> tuple[str, str, str, str]:
    """The watermark, last-counters, first and gaps attributes of one source."""
    digest = _digest(source_key)
    return (WATERMARK_PREFIX + digest, LAST_COUNTERS_PREFIX + digest, FIRST_PREFIX + digest,
            GAPS_PREFIX + digest)


def _first_text(counted: CountedRange) -> str:
    return f"{counted.first_position} {pack(counted.first_before)}"


def stored_range(item: Mapping[str, Any], source_key: str) -> CountedRange | None:
    """What ``item`` (DynamoDB JSON) holds of ``source_key``; None when nothing.

    An item written before ranges existed has only a watermark: everything up to it is
    counted, and the counters at either end are unknown (no gap is read across them).
    """
    mark, last, first, gaps = range_attributes(source_key)
    last_position = _string(item, mark)
    if last_position is None:
        return None
    last_text = _string(item, last)
    first_text = _string(item, first) or " *"
    first_position, _, first_counters = first_text.partition(" ")
    return CountedRange(first_position, unpack(first_counters), last_position,
                        None if last_text is None else unpack(last_text),
                        decode_gaps(_string(item, gaps) or ""))


def stored_ranges(update: SnapshotUpdate, item: Mapping[str, Any]) -> dict[str, CountedRange]:
    """The ranges ``item`` holds for the sources feeding ``update``."""
    found = {}
    for source in update.by_source:
        counted = stored_range(item, source)
        if counted is not None:
            found[source] = counted
    return found


def _string(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    text = value.get("S") if isinstance(value, dict) else None
    return text if isinstance(text, str) else None


@dataclass
class Applied:
    """What one snapshot write did."""

    duplicates: int = 0
    """Records the item had already counted (a redelivery, a replay)."""
    gaps: dict[str, dict[str, int]] = field(default_factory=dict)
    """Source → whole tokens per limit of records never counted, read off its counters."""
    written: bool = True
    """False when every record was a duplicate this container knew of: no request sent."""


class _Plan:
    """One source's share of a request, reconciled against a known or an assumed range."""

    __slots__ = ("assumed", "known", "reconciled", "source")

    def __init__(self, source: str, run: list[Contribution], known: CountedRange | None,
                 assumed: bool, scale: int) -> None:
        self.source = source
        self.known = known
        self.assumed = assumed
        """The stored range is not known: the write assumes the batch continues it."""
        self.reconciled = reconcile(run, known, scale)


@dataclass(frozen=True, slots=True)
class Remembered:
    counted: CountedRange
    exact: bool
    """True: the item held exactly this after the write. False: the write assumed the batch
    continued the item's range, so only its top is known (the bottom may reach lower)."""


class WrittenRanges:
    """What a container wrote last, per (snapshot item, source), bounded.

    Safe to trust: a stored range only grows, so records inside one this container wrote
    are counted whoever wrote since; records outside it are written conditioned on it,
    and a range that moved meanwhile fails the condition and is read back.
    """

    def __init__(self, capacity: int = _REMEMBERED_RANGES) -> None:
        self._capacity = capacity
        self._ranges: dict[tuple[SnapshotKey, str], Remembered] = {}
        self._lock = threading.Lock()

    def recall(self, key: SnapshotKey, sources: Iterable[str]) -> dict[str, Remembered]:
        with self._lock:
            return {source: found for source in sources
                    if (found := self._ranges.get((key, source))) is not None}

    def remember(self, key: SnapshotKey, ranges: Mapping[str, Remembered]) -> None:
        with self._lock:
            if len(self._ranges) + len(ranges) > self._capacity:
                self._ranges.clear()
            for source, found in ranges.items():
                self._ranges[key, source] = found


def _unseen(run: list[Contribution], remembered: Remembered | None) -> list[Contribution]:
    """The records of ``run`` a continuing write must still send, given what the container
    wrote last: those past its top, unless some lie below what it knows (then all)."""
    if remembered is None or run[0].position < remembered.counted.first_position:
        return run
    return [link for link in run if link.position > remembered.counted.last_position]


class SnapshotStore:
    """Applies coalesced snapshot updates, one UpdateItem per snapshot item."""

    def __init__(self, client: DynamoDBClient, config: AggregatorConfig, *,
                 written: WrittenRanges | None = None) -> None:
        """``written``: shared by every store of one container (one is made if not given)."""
        self._client = client
        self._config = config
        self.written = WrittenRanges() if written is None else written
        # What every request of this configuration shares, worked out once.
        names = {
            "#entity": "entity_id", "#resource": "resource", "#window": "window",
            "#start": "window_start", "#events": "total_events",
            "#g2pk": "GSI2PK", "#g2sk": "GSI2SK",
        }
        sets = ["#entity = :entity", "#resource = :resource", "#window = :window",
                "#start = :start", "#g2pk = :g2pk", "#g2sk = :g2sk"]
        if config.snapshot_gsi4pk:
            names.update({"#g4pk": "GSI4PK", "#g4sk": "GSI4SK"})
            sets += ["#g4pk = :g4pk", "#g4sk = :g4sk"]
        if config.snapshot_ttl_days:
            names["#ttl"] = "ttl"
            sets.append("#ttl = if_not_exists(#ttl, :ttl)")
        self._names = names
        self._sets = "SET " + ", ".join(sets)

    def apply(self, update: SnapshotUpdate) -> Applied:
        """Add what ``update`` holds that the item has not counted yet."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("snapshot update", extra={
                "entity_id": update.key.entity, "resource": update.key.resource,
                "window": update.key.window.value, "window_key": update.key.window_key,
                "records": len(update.records()),
            })
        scale = self._config.counter_scale
        memory = self.written.recall(update.key, update.by_source)
        known = {source: found.counted for source, found in memory.items() if found.exact}
        assumed = {source for source in update.by_source if source not in known}
        runs = {source: run if source in known else _unseen(run, memory.get(source))
                for source, run in update.by_source.items()}
        for _ in range(_MAX_CONFLICTS):
            plans = [_Plan(source, runs[source], known.get(source), source in assumed, scale)
                     for source in sorted(update.by_source) if runs[source]]
            plans = [p for p in plans if p.reconciled.kept]
            applied = Applied(duplicates=len(update.records()) - sum(
                len(p.reconciled.kept) for p in plans))
            if not plans:
                applied.written = False
                return applied
            if any(p.assumed and p.reconciled.range.gaps for p in plans):
                # Records missing inside the batch itself (skipped as malformed): the gaps
                # must be merged with the item's own, which only an exact write can do.
                known, assumed = stored_ranges(update, self._read(snapshot_item_key(
                    self._config, update.key))), set()
                runs = update.by_source
                continue
            request = self._request(update.key, plans)
            try:
                self._client.update_item(**request)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise to_store_error(exc, "snapshot update") from exc
                stored: Mapping[str, Any] = exc.response.get("Item") or \
                    self._read(request["Key"])  # type: ignore[assignment]
                known, assumed, runs = stored_ranges(update, stored), set(), update.by_source
                continue
            except BotoCoreError as exc:
                raise to_store_error(exc, "snapshot update") from exc
            self.written.remember(update.key, {
                p.source: Remembered(p.reconciled.range, exact=not p.assumed) for p in plans})
            for plan in plans:
                if plan.reconciled.gaps:
                    applied.gaps[plan.source] = plan.reconciled.gaps
                    self._log_gap(update.key, plan)
            return applied
        raise StoreError("snapshot update: the counted range kept moving", retryable=True,
                         code="WatermarkConflict")

    def _request(self, key: SnapshotKey, plans: list[_Plan]) -> dict[str, Any]:
        config = self._config
        fields = key_fields(key)
        names = self._names.copy()
        counters: dict[str, int] = {}
        events = 0
        for plan in plans:
            events += plan.reconciled.events
            for name, amount in plan.reconciled.tokens.items():
                counters[name] = counters.get(name, 0) + amount
        values: dict[str, Any] = {
            ":entity": {"S": key.entity}, ":resource": {"S": key.resource},
            ":window": {"S": key.window.value}, ":start": {"S": key.window_key},
            ":events": {"N": str(events)},
            ":g2pk": {"S": config.snapshot_gsi2pk.format_map(fields)},
            ":g2sk": {"S": config.snapshot_gsi2sk.format_map(fields)},
        }
        if config.snapshot_gsi4pk:
            values[":g4pk"] = {"S": config.snapshot_gsi4pk.format_map(fields)}
            values[":g4sk"] = {"S": config.snapshot_gsi4sk.format_map(fields)}
        if config.snapshot_ttl_days:
            expires = int(window_end(key.window_key, key.window).timestamp())
            values[":ttl"] = {"N": str(expires + config.snapshot_ttl_days * 86_400)}
        adds = ["#events :events"]
        for i, (name, amount) in enumerate(sorted(counters.items())):
            if amount:
                names[f"#c{i}"] = name
                values[f":c{i}"] = {"N": str(amount)}
                adds.append(f"#c{i} :c{i}")
        sets = [self._sets]
        conditions = []
        for i, plan in enumerate(plans):
            mark, last, first, gaps = range_attributes(plan.source)
            names[f"#w{i}"], names[f"#n{i}"], names[f"#a{i}"] = mark, last, first
            counted = plan.reconciled.range
            values[f":w{i}"] = {"S": counted.last_position}
            values[f":a{i}"] = {"S": _first_text(counted)}
            sets.append(f"#w{i} = :w{i}")
            if counted.last_after is not None:
                values[f":n{i}"] = {"S": pack(counted.last_after)}
                sets.append(f"#n{i} = :n{i}")
            if plan.assumed:
                conditions.append(self._continues(i, plan, values))
                # Only a new source has no first attribute (see _continues).
                sets.append(f"#a{i} = if_not_exists(#a{i}, :a{i})")
            else:
                names[f"#g{i}"] = gaps
                values[f":g{i}"] = {"S": encode_gaps(counted.gaps)}
                conditions.append(self._holds(i, plan.known, values))
                sets += [f"#a{i} = :a{i}", f"#g{i} = :g{i}"]
        return {
            "TableName": config.snapshot_table,
            "Key": snapshot_item_key(config, key),
            "UpdateExpression": f"{', '.join(sets)} ADD {', '.join(adds)}",
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    @staticmethod
    def _continues(i: int, plan: _Plan, values: dict[str, Any]) -> str:
        """The source is new to the item, or the batch starts where the item's range ends.

        An item written before ranges existed (a watermark, no first attribute) fails it
        either way, so the exact path gives it its first attribute.
        """
        first = plan.reconciled.kept[0]
        values[f":f{i}"] = {"S": first.position}
        if first.before is None:  # an INSERT starts a new chain: no counters to match
            return f"(attribute_not_exists(#w{i}) OR (#w{i} < :f{i} AND attribute_exists(#a{i})))"
        values[f":o{i}"] = {"S": pack(first.before)}
        return f"(attribute_not_exists(#w{i}) OR (#w{i} < :f{i} AND #n{i} = :o{i}))"

    @staticmethod
    def _holds(i: int, known: CountedRange | None, values: dict[str, Any]) -> str:
        """The item holds exactly ``known`` for the source (nothing, when None)."""
        if known is None:
            return f"attribute_not_exists(#w{i})"
        values[f":W{i}"] = {"S": known.last_position}
        if known.gaps:
            values[f":G{i}"] = {"S": encode_gaps(known.gaps)}
            gaps = f"#g{i} = :G{i}"
        else:  # none written yet, or all filled
            values[f":G{i}"] = {"S": ""}
            gaps = f"(attribute_not_exists(#g{i}) OR #g{i} = :G{i})"
        if known.first_position:
            values[f":A{i}"] = {"S": _first_text(known)}
            return f"(#w{i} = :W{i} AND #a{i} = :A{i} AND {gaps})"
        return f"(#w{i} = :W{i} AND attribute_not_exists(#a{i}) AND {gaps})"

    def _log_gap(self, key: SnapshotKey, plan: _Plan) -> None:
        counted = plan.reconciled.range
        logger.warning(NEVER_COUNTED, extra={
            "kind": "reconciled", "entity_id": key.entity, "resource": key.resource,
            "window": key.window.value, "window_key": key.window_key,
            "source": plan.source, "tokens": plan.reconciled.gaps,
            "first_position": counted.first_position, "last_position": counted.last_position,
        })

    def _read(self, key: Mapping[str, Any]) -> Mapping[str, Any]:
        """Fallback for endpoints that do not return the item on a failed condition."""
        try:
            response = self._client.get_item(
                TableName=self._config.snapshot_table, Key=key, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise to_store_error(exc, "snapshot range read") from exc
        return response.get("Item", {})


def read_schema_version(client: DynamoDBClient, table_name: str) -> str | None:
    """zae-limiter's schema version as ``table_name`` records it; None: no version item
    (not a zae-limiter table, or one its client has not opened yet)."""
    try:
        item = client.get_item(TableName=table_name, Key={
            "PK": {"S": VERSION_PK}, "SK": {"S": VERSION_SK}}).get("Item")
    except (ClientError, BotoCoreError) as exc:
        raise to_store_error(exc, "schema version read") from exc
    if item is None:
        return None
    return _string(item, "schema_version") or ""
