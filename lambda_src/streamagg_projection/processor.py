"""Stream records -> the batch's coalesced writes. Pure: no boto3.

A source item's records in one batch are folded into one net change: put the items of
its newest image, delete every key an earlier image of the batch (or the first record's
old image) projected that the newest image does not. That is what applying the records
one by one would leave, but with one request per dashboard key, which BatchWriteItem
requires (it rejects a call that names a key twice).

Every write of an item carries all of that item's records in the batch: if any of them
fails, all of them are reported, so Lambda retries the item from its first record of
the batch and never checkpoints past a half-applied item (the convergence argument in
``docs/projection.md`` rests on this).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamagg_engine.batch import UNEXPECTED_SHAPES, skip_reason
from streamagg_engine.errors import MalformedRecordError
from streamagg_engine.records import StreamRecord

from .config import ProjectionConfig
from .transform import Item, Key, Projection, key_json, project

logger = logging.getLogger(__name__)

BATCH_WRITE_LIMIT = 25
"""Requests per BatchWriteItem call (the API's maximum)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One record, decoded: the projections of its old and new image."""

    record: StreamRecord
    source_item: str
    """The record's item key, canonical: records of one source item share it."""
    old: Projection
    new: Projection


def decode_change(record: StreamRecord, config: ProjectionConfig
                  ) -> tuple[Change, MalformedRecordError | None]:
    """The change a record makes; a new image that cannot be projected projects nothing.

    The problem is returned, not raised: the record still removes what its old image
    projected (the source item no longer looks like that), and is then logged as skipped.
    An old image that cannot be projected projected nothing when it was new, so it is
    taken as empty without a second log line.
    """
    problem = None
    try:
        new = project(record.new_image, config)
    except (MalformedRecordError, *UNEXPECTED_SHAPES) as exc:
        new = {}
        problem = exc if isinstance(exc, MalformedRecordError) else \
            MalformedRecordError(skip_reason(exc))
    try:
        old = project(record.old_image, config)
    except (MalformedRecordError, *UNEXPECTED_SHAPES):
        old = {}
    source_item = json.dumps(record.keys, sort_keys=True, separators=(",", ":"))
    return Change(record, source_item, old, new), problem


@dataclass
class ItemWrites:
    """The net writes of one source item in a batch, and the records they carry."""

    source_item: str
    records: list[StreamRecord] = field(default_factory=list)
    puts: dict[Key, Item] = field(default_factory=dict)
    deletes: set[Key] = field(default_factory=set)

    @property
    def newest(self) -> str:
        return self.records[-1].position

    @property
    def carried(self) -> list[tuple[str, str]]:
        return [(r.position, r.sequence_number) for r in self.records]


@dataclass(frozen=True, slots=True)
class WriteRequest:
    key: Key
    request: dict[str, Any]
    """BatchWriteItem's ``PutRequest`` or ``DeleteRequest``."""
    owner: ItemWrites


def coalesce(changes: Iterable[Change]) -> list[ItemWrites]:
    """Each source item's net change, in the order of its first record in the batch."""
    by_item: dict[str, ItemWrites] = {}
    for change in sorted(changes, key=lambda c: c.record.position):
        writes = by_item.get(change.source_item)
        if writes is None:
            writes = by_item[change.source_item] = ItemWrites(change.source_item)
        writes.records.append(change.record)
        writes.deletes.update(writes.puts)
        writes.deletes.update(change.old)
        writes.puts = dict(change.new)
    for writes in by_item.values():
        writes.deletes.difference_update(writes.puts)
    return [w for w in by_item.values() if w.puts or w.deletes]


def requests(items: Sequence[ItemWrites], sort_key: str) -> Iterator[WriteRequest]:
    """One request per dashboard key; a key two source items project goes to the newest.

    Two source items project the same key only if they share ``source_id`` and
    ``ingested_at`` without sharing a table key (a source table keyed otherwise), or, with
    seed 004's sort key, share ``ingested_at``: the newer record wins, as a plain put
    would, and a warning names the key.
    """
    claimed: set[Key] = set()
    for writes in sorted(items, key=lambda w: w.newest, reverse=True):
        for key, item in sorted(writes.puts.items()):
            if _claim(claimed, key, writes):
                yield WriteRequest(key, {"PutRequest": {"Item": item}}, writes)
        for key in sorted(writes.deletes):
            if _claim(claimed, key, writes):
                yield WriteRequest(key, {"DeleteRequest": {"Key": key_json(key, sort_key)}},
                                   writes)


def chunks(found: Iterable[WriteRequest], size: int = BATCH_WRITE_LIMIT
           ) -> Iterator[list[WriteRequest]]:
    chunk: list[WriteRequest] = []
    for request in found:
        chunk.append(request)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _claim(claimed: set[Key], key: Key, writes: ItemWrites) -> bool:
    if key in claimed:
        logger.warning("two source items project the same dashboard key; the newest wins",
                       extra={"key": list(key), "source_item": writes.source_item})
        return False
    claimed.add(key)
    return True
