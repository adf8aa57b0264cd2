"""What a batch of enriched events writes: transactions, unique-user sets, archive objects.

Pure: no I/O, no clock. Item layout in the metrics table (partition and sort key
values; the attribute names are ``key_attributes``, ``pk``/``sk`` by default):

* counters, one item per experiment, variant and window:
  ``EXP#<experiment>`` / ``<window>#<window start>#VARIANT#<variant>`` holding ``events``,
  ``n_<type>`` (events of a type) and ``s_<type>`` (sum of their ``value``);
* unique users of the same window, split by a hash of the user id over
  ``unique_user_shards`` items: ``...#VARIANT#<variant>#USERS#<shard>``, a string set ``users``;
* one marker per counted event: ``EVENT#<event_id>`` / ``MARKER``.

A :class:`Transaction` holds at most ``transaction_size`` actions: the marker of each of
its events (``attribute_not_exists``) and one ADD per counter item they touch. An event's
contribution therefore lands together with its marker or not at all.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from streamagg_engine.jsonl import encode_jsonl
from streamagg_engine.windows import Window, window_keys

from .config import EventMetricsConfig
from .enrich import Enriched
from .kinesis import KinesisRecord


@dataclass(frozen=True, slots=True)
class Counted:
    """An enriched event with the stream record that carried it."""

    record: KinesisRecord
    enriched: Enriched

    @property
    def carried(self) -> tuple[str, str]:
        return (self.record.position, self.record.sequence_number)


@dataclass(frozen=True, slots=True, order=True)
class CounterKey:
    experiment_id: str
    variant: str
    window: str
    window_key: str

    @property
    def pk(self) -> str:
        return f"EXP#{self.experiment_id}"

    @property
    def sk(self) -> str:
        return f"{self.window}#{self.window_key}#VARIANT#{self.variant}"


def counter_keys(item: Counted, windows: Sequence[Window]) -> list[CounterKey]:
    event = item.enriched.event
    keys = window_keys(event.timestamp_ms)
    return [CounterKey(event.experiment_id, item.enriched.variant, w.value, keys[w])
            for w in windows]


def totals(events: Iterable[Counted], windows: Sequence[Window]) -> dict[CounterKey,
                                                                          dict[str, Decimal]]:
    """Per counter item, the amounts to ADD: ``events``, ``n_<type>``, ``s_<type>``."""
    out: dict[CounterKey, dict[str, Decimal]] = {}
    for item in events:
        event = item.enriched.event
        for key in counter_keys(item, windows):
            amounts = out.setdefault(key, {})
            for name, amount in (("events", Decimal(1)), (f"n_{event.event_type}", Decimal(1)),
                                 (f"s_{event.event_type}", event.value)):
                amounts[name] = amounts.get(name, Decimal(0)) + amount
    return out


@dataclass(frozen=True)
class Transaction:
    """Events whose markers and counter ADDs commit together."""

    events: tuple[Counted, ...]
    windows: tuple[Window, ...]

    def counters(self) -> dict[CounterKey, dict[str, Decimal]]:
        return totals(self.events, self.windows)

    def without(self, event_ids: set[str]) -> Transaction:
        kept = tuple(e for e in self.events if e.enriched.event.event_id not in event_ids)
        return Transaction(kept, self.windows)

    def carried(self) -> list[tuple[str, str]]:
        return [e.carried for e in self.events]


def plan_transactions(events: Sequence[Counted], config: EventMetricsConfig,
                      ) -> list[list[Transaction]]:
    """Transactions in *lanes*: one lane per experiment and variant, run one after another.

    Transactions of a lane share its daily counter item; DynamoDB cancels concurrent
    transactions on one item, so a lane's run in sequence and lanes run in parallel.
    Events are packed in stream order until the next one would exceed the size limit.
    """
    by_lane: dict[tuple[str, str], list[Counted]] = defaultdict(list)
    for item in events:
        by_lane[(item.enriched.event.experiment_id, item.enriched.variant)].append(item)
    windows = config.windows
    lanes: list[list[Transaction]] = []
    for _, lane_events in sorted(by_lane.items()):
        lane: list[Transaction] = []
        current: list[Counted] = []
        keys: set[CounterKey] = set()
        for item in lane_events:
            new_keys = keys.union(counter_keys(item, windows))
            if current and len(current) + 1 + len(new_keys) > config.transaction_size:
                lane.append(Transaction(tuple(current), windows))
                current, new_keys = [], set(counter_keys(item, windows))
            current.append(item)
            keys = new_keys
        if current:
            lane.append(Transaction(tuple(current), windows))
        lanes.append(lane)
    return lanes


@dataclass(frozen=True)
class UserSetUpdate:
    """Users to ADD to one unique-user set item (idempotent: a set ADD of a member is a no-op)."""

    key: CounterKey
    shard: int
    users: frozenset[str]
    carried: tuple[tuple[str, str], ...]

    @property
    def sk(self) -> str:
        return f"{self.key.sk}#USERS#{self.shard:03d}"


def user_shard(user_id: str, shards: int) -> int:
    """Stable across processes (unlike ``hash``), so a user always lands in one set."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def plan_user_sets(events: Iterable[Counted], config: EventMetricsConfig) -> list[UserSetUpdate]:
    users: dict[tuple[CounterKey, int], set[str]] = defaultdict(set)
    carried: dict[tuple[CounterKey, int], list[tuple[str, str]]] = defaultdict(list)
    for item in events:
        user = item.enriched.event.user_id
        shard = user_shard(user, config.unique_user_shards)
        for key in counter_keys(item, config.windows):
            users[(key, shard)].add(user)
            carried[(key, shard)].append(item.carried)
    return [UserSetUpdate(key, shard, frozenset(users[(key, shard)]),
                          tuple(carried[(key, shard)]))
            for key, shard in sorted(users)]


ARCHIVE_SCHEMA_VERSION = "1"
"""The layout of an archive line (:func:`archive_line`); a change of its fields bumps it,
so a reader can tell old objects from new ones by their metadata."""


@dataclass(frozen=True)
class ArchiveObject:
    key: str
    body: bytes
    events: tuple[Counted, ...]

    @property
    def metadata(self) -> dict[str, str]:
        """The object's S3 user metadata: how many events it holds, the earliest and latest
        event time, and :data:`ARCHIVE_SCHEMA_VERSION`."""
        times = [item.enriched.event.timestamp_ms for item in self.events]
        return {"event-count": str(len(self.events)),
                "first-event-time": _iso_ms(min(times)), "last-event-time": _iso_ms(max(times)),
                "schema-version": ARCHIVE_SCHEMA_VERSION}


def archive_line(item: Counted) -> dict[str, Any]:
    """One archive line: the validated event, its enrichment and where it came from."""
    event, record = item.enriched.event, item.record
    return {
        "event_id": event.event_id, "event_type": event.event_type, "user_id": event.user_id,
        "experiment_id": event.experiment_id,
        "experiment_name": item.enriched.experiment_name, "variant": item.enriched.variant,
        "timestamp": _iso_ms(event.timestamp_ms), "value": _plain(event.value),
        "properties": _plain(dict(event.properties)),
        "ms_since_assignment": item.enriched.ms_since_assignment,
        "sequence_number": record.sequence_number, "partition_key": record.partition_key,
        "arrived_at": _iso_ms(record.arrival_ms),
    }


def plan_archive(events: Sequence[Counted], config: EventMetricsConfig, shard_id: str,
                 ) -> list[ArchiveObject]:
    """Objects per event hour, in stream order, cut at ``archive_max_events`` or
    ``archive_max_bytes`` of uncompressed JSON; keys name the shard and sequence range."""
    by_hour: dict[str, list[tuple[Counted, dict[str, Any], int]]] = defaultdict(list)
    for item in sorted(events, key=lambda e: e.record.position):
        line = archive_line(item)
        size = len(json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode()) + 1
        by_hour[_hour_prefix(item.enriched.event.timestamp_ms)].append((item, line, size))
    objects: list[ArchiveObject] = []
    for hour, entries in sorted(by_hour.items()):
        chunk: list[tuple[Counted, dict[str, Any], int]] = []
        used = 0
        for entry in entries:
            if chunk and (len(chunk) >= config.archive_max_events
                          or used + entry[2] > config.archive_max_bytes):
                objects.append(_object(config.archive_prefix + hour, shard_id, chunk))
                chunk, used = [], 0
            chunk.append(entry)
            used += entry[2]
        if chunk:
            objects.append(_object(config.archive_prefix + hour, shard_id, chunk))
    return objects


def _object(prefix: str, shard_id: str,
            chunk: list[tuple[Counted, dict[str, Any], int]]) -> ArchiveObject:
    first, last = chunk[0][0].record, chunk[-1][0].record
    key = f"{prefix}events-{shard_id}-{first.sequence_number}-{last.sequence_number}.jsonl.gz"
    return ArchiveObject(key=key, body=encode_jsonl(line for _, line, _ in chunk),
                         events=tuple(item for item, _, _ in chunk))


def _hour_prefix(timestamp_ms: int) -> str:
    moment = datetime.fromtimestamp(timestamp_ms // 3_600_000 * 3600, tz=UTC)
    return moment.strftime("year=%Y/month=%m/day=%d/hour=%H/")


def _iso_ms(timestamp_ms: int) -> str:
    moment = datetime.fromtimestamp(timestamp_ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{timestamp_ms % 1000:03d}Z"


def _plain(value: Any) -> Any:
    """JSON-ready: exact decimals become int, or float when fractional."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
