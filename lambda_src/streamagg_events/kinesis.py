"""Lambda's Kinesis records: the envelope, the base64 payload, the JSON document (pure).

A record is ``{"eventID": "shardId-...:<seq>", "eventSourceARN": ..., "kinesis": {"data":
<base64>, "sequenceNumber": <decimal string>, "partitionKey": ...,
"approximateArrivalTimestamp": <epoch seconds>}}``. Sequence numbers are decimal strings
of up to 129 digits whose lengths differ, so they are compared as zero-padded
*positions* (:func:`position`), never as raw strings.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from streamagg_engine.bounds import check_epoch_ms, check_text
from streamagg_engine.errors import MalformedRecordError

_SHARD_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
POSITION_DIGITS = 129
"""Kinesis documents sequence numbers as ``0|([1-9]\\d{0,128})``."""
MAX_PAYLOAD_BYTES = 1024 * 1024
"""Kinesis's record size limit; a larger payload cannot be a real record."""


@dataclass(frozen=True, slots=True)
class KinesisRecord:
    event_id: str
    sequence_number: str
    position: str
    """``sequence_number`` zero-padded: sorts as the stream orders records."""
    partition_key: str
    arrival_ms: int
    data: str
    """The base64 payload, decoded only by :func:`decode_document`."""

    @property
    def shard_id(self) -> str:
        """From ``eventID`` (``shardId-000000000000:<seq>``); a batch comes from one shard."""
        shard, colon, _ = self.event_id.partition(":")
        # It names archive objects: a producer cannot set eventID, but a hand-made event
        # could, and a key must stay short and plain.
        return shard if colon and _SHARD_ID.fullmatch(shard) else "unknown-shard"


def position(sequence_number: str) -> str:
    """A sequence number as a fixed-width string that sorts numerically."""
    if not (sequence_number.isdigit() and sequence_number.isascii()) \
            or len(sequence_number) > POSITION_DIGITS:
        raise MalformedRecordError(f"sequence number {sequence_number[:40]!r} is not decimal")
    return sequence_number.zfill(POSITION_DIGITS)


def parse_record(raw: Any) -> KinesisRecord:
    """The envelope of one Lambda Kinesis record, or MalformedRecordError."""
    if not isinstance(raw, dict) or not isinstance(raw.get("kinesis"), dict):
        raise MalformedRecordError("not a Kinesis record: no 'kinesis' object")
    body = raw["kinesis"]
    sequence = body.get("sequenceNumber")
    data = body.get("data")
    if not isinstance(sequence, str):
        raise MalformedRecordError("kinesis.sequenceNumber is missing")
    if not isinstance(data, str):
        raise MalformedRecordError("kinesis.data is missing")
    event_id = raw.get("eventID")
    partition_key = body.get("partitionKey", "")
    return KinesisRecord(
        event_id=check_text(event_id, "eventID") if isinstance(event_id, str) and event_id
        else sequence,
        sequence_number=sequence,
        position=position(sequence),
        partition_key=check_text(partition_key, "kinesis.partitionKey")
        if isinstance(partition_key, str) else "",
        arrival_ms=_arrival_ms(body.get("approximateArrivalTimestamp", 0)),
        data=data,
    )


def _arrival_ms(value: Any) -> int:
    """Kinesis's arrival time (epoch seconds) in milliseconds; 0 when absent.

    Kinesis sets it, so a value that is not a time the windows can represent (infinite,
    negative, past the year 9999) means the envelope is not Kinesis's.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if not math.isfinite(value):
        raise MalformedRecordError("kinesis.approximateArrivalTimestamp is not finite")
    return check_epoch_ms(int(value * 1000), "kinesis.approximateArrivalTimestamp")


def decode_document(record: KinesisRecord) -> Any:
    """The JSON document in the payload: strict base64, UTF-8, exact numbers."""
    if len(record.data) > MAX_PAYLOAD_BYTES * 4 // 3 + 4:
        raise MalformedRecordError("payload larger than a Kinesis record can be")
    try:
        payload = base64.b64decode(record.data, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedRecordError("kinesis.data is not valid base64") from None
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRecordError("payload is not UTF-8") from None
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constants)
    except ValueError as exc:
        raise MalformedRecordError(f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise MalformedRecordError("payload is not JSON: nested too deeply") from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
