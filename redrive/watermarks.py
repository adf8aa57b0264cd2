"""What replaying a range will add to the snapshots, read off their watermarks.

A snapshot item keeps, per bucket feeding it, the stream position of the newest record
it has counted (``aggregator.stores``). A replayed record is added only if it is newer
than that watermark, which is what makes a replay safe. It also decides what a replay
*can* add. For each record of the range and each snapshot item it feeds:

* watermark absent or older than the record: **to add** (the replay counts it);
* watermark at or after the record, but inside the range: **already counted** (an
  earlier attempt at this same batch wrote that item before the batch failed);
* watermark beyond the range's end: **shadowed**. A later batch of the same bucket has
  counted into the same snapshot item since; the watermark moved past this record
  whether or not it was counted, so a replay skips it, and whether it is in the
  snapshot cannot be told from the item. This happens when the mapping went on with
  the shard after giving up on the batch (it does, after ``retry_attempts`` or
  ``max_record_age``) and the bucket kept consuming in the same window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from aggregator.archiver import is_archivable
from aggregator.config import AggregatorConfig
from aggregator.processor import (
    CounterChange,
    SnapshotKey,
    SnapshotUpdate,
    decode_change,
    plan_snapshots,
)
from aggregator.stores import snapshot_item_key, stored_watermarks, watermark_attribute
from streamagg_engine.errors import MalformedRecordError
from streamagg_engine.records import SEQUENCE_WIDTH, StreamRecord, parse_record

from .errors import RedriveError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass
class ShadowedItem:
    """A snapshot item whose share of the range a replay cannot add."""

    key: SnapshotKey
    records: int = 0
    tokens: dict[str, int] = field(default_factory=dict)
    """Whole tokens per limit those records moved (what may be missing)."""

    def describe(self) -> str:
        tokens = ", ".join(f"{name} {amount:+d}" for name, amount in sorted(self.tokens.items()))
        return (f"{self.key.entity} / {self.key.resource} {self.key.window.value} "
                f"{self.key.window_key}: {self.records} record(s), {tokens or 'no tokens'}")


@dataclass
class WatermarkCheck:
    """Counts are of (record, snapshot item) pairs: a record feeds one item per window."""

    counting_records: int = 0
    """Records of the range that move a counter."""
    to_add: int = 0
    already_counted: int = 0
    shadowed: list[ShadowedItem] = field(default_factory=list)
    archive_lines: int = 0
    """Audit removals the replay archives (again, under the same key: no duplicates)."""
    malformed: int = 0
    """Records the handler will log and skip, as it did the first time."""

    @property
    def shadowed_pairs(self) -> int:
        return sum(item.records for item in self.shadowed)


def check_range(
    records: Sequence[Mapping[str, Any]],
    *,
    range_end: str,
    config: AggregatorConfig,
    dynamodb: DynamoDBClient,
) -> WatermarkCheck:
    """Classify what replaying ``records`` (one failed range, filtered) will add.

    Raises:
        RedriveError: a snapshot item could not be read.
    """
    check = WatermarkCheck()
    changes = _decode(records, config, check)
    check.counting_records = len(changes)
    end = range_end.zfill(SEQUENCE_WIDTH)
    for update in plan_snapshots(changes, config):
        stored = _watermarks(dynamodb, config, update)
        shadowed = ShadowedItem(update.key)
        for source, contributions in update.by_source.items():
            mark = stored.get(source)
            for contribution in contributions:
                if mark is None or contribution.position > mark:
                    check.to_add += 1
                elif mark <= end:
                    check.already_counted += 1
                else:
                    shadowed.records += 1
                    for name, amount in contribution.counters.items():
                        shadowed.tokens[name] = shadowed.tokens.get(name, 0) + amount
        if shadowed.records:
            check.shadowed.append(shadowed)
    return check


def _decode(records: Sequence[Mapping[str, Any]], config: AggregatorConfig,
            check: WatermarkCheck) -> list[tuple[StreamRecord, CounterChange]]:
    """The records that move counters, as the handler decodes them, in stream order."""
    changes = []
    for raw in records:
        try:
            record = parse_record(raw)
            namespace, rest = record.namespace_and_rest
            if rest.startswith(config.source_key_marker):
                change = decode_change(record, config, namespace)
                if change is not None:
                    changes.append((record, change))
            elif config.archival_enabled and is_archivable(record, config):
                check.archive_lines += 1
        except (MalformedRecordError, TypeError, ValueError, KeyError, AttributeError,
                IndexError):
            check.malformed += 1
    changes.sort(key=lambda pair: pair[0].position)
    return changes


def _watermarks(dynamodb: DynamoDBClient, config: AggregatorConfig,
                update: SnapshotUpdate) -> dict[str, str]:
    names = {f"#w{i}": watermark_attribute(source) for i, source in enumerate(update.by_source)}
    try:
        item = dynamodb.get_item(
            TableName=config.snapshot_table, Key=snapshot_item_key(config, update.key),
            ProjectionExpression=", ".join(names), ExpressionAttributeNames=names,
            ConsistentRead=True,
        ).get("Item", {})
    except (ClientError, BotoCoreError) as exc:
        raise RedriveError(f"reading snapshot {update.key}: {exc}") from exc
    return stored_watermarks(update, item)
