"""Lambda's on-failure messages for stream batches, parsed (pure: no I/O).

When a stream's event source mapping gives up on a batch (retries exhausted, records too
old), it sends the on-failure destination a JSON document describing the batch, not the
records. A DynamoDB stream's says ``DDBStreamBatchInfo``, a Kinesis stream's
``KinesisBatchInfo``, with the same fields::

    {"requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11, ...},
     "timestamp": "2026-05-04T10:00:00.000Z",
     "DDBStreamBatchInfo": {"shardId": "shardId-...", "startSequenceNumber": "4000...",
                            "endSequenceNumber": "4000...", "batchSize": 100,
                            "approximateArrivalOfFirstRecord": "2026-05-04T09:59:58Z",
                            "approximateArrivalOfLastRecord": "2026-05-04T09:59:59Z",
                            "streamArn": "arn:aws:dynamodb:...:table/t/stream/..."}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import NotOnFailureMessageError

STREAM_RETENTION = timedelta(hours=24)
"""How long a DynamoDB stream keeps a record (a Kinesis stream's default retention too)."""
BATCH_INFO = {"DDBStreamBatchInfo": "dynamodb", "KinesisBatchInfo": "kinesis"}
"""The on-failure message's batch key -> the stream type it describes."""
SEQUENCE_WIDTH = 40
"""Sequence numbers are compared as integers: they have up to 40 digits."""


@dataclass(frozen=True)
class FailedRange:
    """One DLQ message: the stream range of a batch the mapping gave up on."""

    message_id: str
    receipt_handle: str
    stream_arn: str
    shard_id: str
    start: str
    """First sequence number of the range (inclusive)."""
    end: str
    """Last sequence number of the range (inclusive)."""
    batch_size: int
    """Records the mapping had in the batch (filtered records are not among them)."""
    first_arrival: datetime | None
    last_arrival: datetime | None
    condition: str
    """Why Lambda gave up: ``RetryAttemptsExhausted``, ``RecordAgeExceeded``, ..."""
    invocations: int | None
    failed_at: datetime | None
    """When Lambda gave up (the message's ``timestamp``)."""
    source: str = "dynamodb"
    """The stream type: ``dynamodb`` or ``kinesis`` (see :data:`BATCH_INFO`)."""

    @property
    def order(self) -> tuple[str, int]:
        """Replay order: stream, then position (a shard's ranges oldest first)."""
        return self.stream_arn, int(self.start)

    def contains(self, sequence_number: str) -> bool:
        return int(self.start) <= int(sequence_number) <= int(self.end)

    def expires_at(self) -> datetime | None:
        """When the range's first record leaves the stream (approximately)."""
        return self.first_arrival + STREAM_RETENTION if self.first_arrival else None

    def describe(self) -> str:
        return f"shard {self.shard_id}, sequence {self.start}..{self.end}"

    def arrivals(self) -> str:
        first = iso(self.first_arrival)
        last = iso(self.last_arrival)
        return first if first == last else f"{first} to {last}"


def parse_on_failure(message_id: str, receipt_handle: str, body: str) -> FailedRange:
    """Read one SQS message body.

    Raises:
        NotOnFailureMessageError: the body is not a stream batch's on-failure record.
    """
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise NotOnFailureMessageError(f"not JSON: {exc}") from exc
    document = document if isinstance(document, dict) else {}
    found = [key for key in BATCH_INFO if isinstance(document.get(key), dict)]
    if not found:
        raise NotOnFailureMessageError("no DDBStreamBatchInfo or KinesisBatchInfo: not a "
                                       "stream batch's on-failure record")
    key = found[0]
    info = document[key]
    fields = {}
    for name in ("streamArn", "shardId", "startSequenceNumber", "endSequenceNumber"):
        value = info.get(name)
        if not isinstance(value, str) or not value:
            raise NotOnFailureMessageError(f"{key}.{name} is missing")
        fields[name] = value
    start, end = fields["startSequenceNumber"], fields["endSequenceNumber"]
    for value in (start, end):
        if not (value.isascii() and value.isdigit() and len(value) <= SEQUENCE_WIDTH):
            raise NotOnFailureMessageError(f"{value!r} is not a sequence number")
    if int(start) > int(end):
        raise NotOnFailureMessageError(f"the range {start}..{end} is reversed")
    context = document.get("requestContext")
    context = context if isinstance(context, dict) else {}
    count = context.get("approximateInvokeCount")
    size = info.get("batchSize")
    return FailedRange(
        message_id=message_id,
        receipt_handle=receipt_handle,
        stream_arn=fields["streamArn"],
        shard_id=fields["shardId"],
        start=start,
        end=end,
        batch_size=size if isinstance(size, int) and not isinstance(size, bool) else 0,
        first_arrival=_timestamp(info.get("approximateArrivalOfFirstRecord")),
        last_arrival=_timestamp(info.get("approximateArrivalOfLastRecord")),
        condition=str(context.get("condition") or "unknown"),
        invocations=count if isinstance(count, int) and not isinstance(count, bool) else None,
        failed_at=_timestamp(document.get("timestamp")),
        source=BATCH_INFO[key],
    )


def age(moment: datetime | None, now: datetime) -> str:
    """``"3 h 5 min ago"`` (``"4 d 2 h ago"`` past two days), or ``"time unknown"``."""
    if moment is None:
        return "time unknown"
    minutes = int((now - moment).total_seconds() // 60)
    if minutes < 0:
        return "in the future"
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        return f"{hours // 24} d {hours % 24} h ago"
    return f"{hours} h {minutes} min ago" if hours else f"{minutes} min ago"


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str:
    """A UTC timestamp to the second, or ``"unknown"``."""
    if moment is None:
        return "unknown"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
