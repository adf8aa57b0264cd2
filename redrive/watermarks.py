"""What replaying a range will add to the snapshots, read off their counted ranges.

A snapshot item keeps, per bucket feeding it, the range of the bucket's stream it has
counted (``aggregator.chain``): every record of the bucket inside the range is counted,
one by one or, inside a *gap*, from the bucket's cumulative counters. For each record of
the range and each snapshot item it feeds:

* outside the item's range (before its first or after its last counted record): **to
  add**, with its tokens; this is a range the mapping gave up on and went on from;
* inside one of the range's gaps: **to add**, its event only (its tokens were counted
  from the counters when the records after it came);
* elsewhere inside the range: **already counted** (an earlier attempt, or this replay
  run before).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from aggregator.archiver import is_archivable
from aggregator.chain import CountedRange, reconcile
from aggregator.config import AggregatorConfig
from aggregator.keys import snapshot_item_key
from aggregator.processor import (
    CounterChange,
    SnapshotUpdate,
    decode_change,
    plan_snapshots,
)
from aggregator.stores import stored_ranges
from streamagg_engine.errors import MalformedRecordError
from streamagg_engine.records import StreamRecord, parse_record

from .errors import RedriveError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass
class WatermarkCheck:
    """Counts are of (record, snapshot item) pairs: a record feeds one item per window."""

    counting_records: int = 0
    """Records of the range that move a counter."""
    to_add: int = 0
    events_only: int = 0
    """Of ``to_add``: records inside a gap, whose tokens are counted already."""
    already_counted: int = 0
    archive_lines: int = 0
    """Audit removals the replay archives (again, under the same key: no duplicates)."""
    malformed: int = 0
    """Records the handler will log and skip, as it did the first time."""


def check_range(
    records: Sequence[Mapping[str, Any]],
    *,
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
    for update in plan_snapshots(changes, config):
        stored = _ranges(dynamodb, config, update)
        for source, contributions in update.by_source.items():
            reconciled = reconcile(contributions, stored.get(source), config.counter_scale)
            added = {link.position for link in reconciled.kept}
            counted = stored.get(source)
            for contribution in contributions:
                if contribution.position not in added:
                    check.already_counted += 1
                    continue
                check.to_add += 1
                if counted is not None and counted.first_position <= contribution.position \
                        <= counted.last_position:
                    check.events_only += 1
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


def _ranges(dynamodb: DynamoDBClient, config: AggregatorConfig,
            update: SnapshotUpdate) -> dict[str, CountedRange]:
    try:
        item = dynamodb.get_item(
            TableName=config.snapshot_table, Key=snapshot_item_key(config, update.key),
            ConsistentRead=True,
        ).get("Item", {})
    except (ClientError, BotoCoreError) as exc:
        raise RedriveError(f"reading snapshot {update.key}: {exc}") from exc
    return stored_ranges(update, item)
