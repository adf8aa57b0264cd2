"""What every stream pipeline's redrive shares about a failed range: where a Lambda record
sits in its shard, what the stream still holds of the range, and what is missing.

DynamoDB stream records keep their position in ``dynamodb.SequenceNumber``, Kinesis
records in ``kinesis.sequenceNumber``; the replay, the partial batch responses and the
reports read it through :func:`position`, so they work on either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .messages import FailedRange


def position(record: Mapping[str, Any]) -> str:
    """A Lambda stream record's sequence number (DynamoDB or Kinesis shape)."""
    body = record.get("dynamodb")
    if isinstance(body, Mapping):
        return str(body["SequenceNumber"])
    return str(record["kinesis"]["sequenceNumber"])


@dataclass
class RangeRead:
    """What the stream still holds of a failed range."""

    records: list[dict[str, Any]] = field(default_factory=list)
    """The range's records, oldest first, Lambda-shaped (unfiltered)."""
    lost_head: str | None = None
    """Why the range's first records are missing, if they are."""
    lost_tail: str | None = None
    """Why the range's last records are missing, if they are."""

    @property
    def complete(self) -> bool:
        return self.lost_head is None and self.lost_tail is None


def note_gaps(result: RangeRead, failed: FailedRange) -> None:
    """Name what is missing at either end of ``result`` (records read, oldest first)."""
    if not result.records:
        reason = result.lost_head or "none of the range's records is in the stream any more"
        result.lost_head = result.lost_tail = reason
        return
    if result.lost_head is None and position(result.records[0]) != failed.start:
        result.lost_head = (f"the stream's records start at {position(result.records[0])},"
                            f" after the range's first record {failed.start}")
    if position(result.records[-1]) != failed.end:
        result.lost_tail = (f"the stream ends at {position(result.records[-1])} before "
                            f"the range's last record {failed.end}")
