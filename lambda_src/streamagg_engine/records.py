"""Lambda's DynamoDB stream records, checked once and turned into typed values.

Everything downstream works on :class:`StreamRecord`; a record that cannot become one
raises :class:`MalformedRecordError` with a reason, and the handler logs and skips it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .bounds import check_text
from .ddb_json import Image, get_string
from .errors import MalformedRecordError
from .windows import LATEST_MS

EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})
SEQUENCE_WIDTH = 40
"""Stream sequence numbers have up to 40 digits: wider than a DynamoDB number, so they
are compared as zero-padded strings."""
_MS_THRESHOLD = 100_000_000_000
"""Epoch seconds pass 1e11 only in the year 5138; a larger value is milliseconds."""


@dataclass(slots=True)
class StreamRecord:
    """One checked stream record; nothing changes it after :func:`parse_record`.

    Not ``frozen``: a batch builds one per record, and a frozen dataclass's ``__init__``
    (one ``object.__setattr__`` per field) costs six times a plain one.
    """

    event_id: str
    event_name: str
    sequence_number: str
    """As Lambda sent it: the value a partial batch response must name."""
    position: str
    """The sequence number zero-padded to 40 digits, so string order is stream order."""
    created_ms: int
    """ApproximateCreationDateTime in epoch milliseconds."""
    partition_key: str
    keys: Image
    old_image: Image | None
    new_image: Image | None
    user_identity: Mapping[str, Any] | None

    @property
    def namespace_and_rest(self) -> tuple[str, str]:
        """``("ns", "BUCKET#...")`` for ``ns/BUCKET#...``; no slash means no namespace."""
        ns, slash, rest = self.partition_key.partition("/")
        return (ns, rest) if slash else ("", self.partition_key)


def parse_record(raw: Any, partition_key_name: str = "PK") -> StreamRecord:
    """Check one record of a Lambda DynamoDB Streams event."""
    if not isinstance(raw, dict):
        raise MalformedRecordError("record is not an object")
    event_id = raw.get("eventID")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedRecordError("missing eventID")
    if not event_id.isascii():
        check_text(event_id, "eventID")
    event_name = raw.get("eventName")
    if not isinstance(event_name, str) or event_name not in EVENT_NAMES:
        raise MalformedRecordError(f"unknown eventName {event_name!r}")
    body = raw.get("dynamodb")
    if not isinstance(body, dict):
        raise MalformedRecordError("missing dynamodb section")
    sequence = body.get("SequenceNumber")
    # isdigit() and isascii() together accept exactly [0-9]+, without a regex.
    if not isinstance(sequence, str) or not (
        sequence.isdigit() and sequence.isascii() and len(sequence) <= SEQUENCE_WIDTH
    ):
        raise MalformedRecordError(f"missing or invalid SequenceNumber {sequence!r}")
    keys = body.get("Keys")
    if not isinstance(keys, dict):
        raise MalformedRecordError("missing Keys")
    partition_key = get_string(keys, partition_key_name)
    if not partition_key:
        raise MalformedRecordError(f"Keys has no string {partition_key_name}")
    created = body.get("ApproximateCreationDateTime")
    # Lambda sends whole seconds as an int: the common case skips the float checks.
    if type(created) is not int or not 0 < created < _MS_THRESHOLD:
        created_ms = _created_ms(created)
    else:
        created_ms = created * 1000
    old_image = body.get("OldImage")
    if old_image is not None and not isinstance(old_image, dict):
        raise MalformedRecordError("OldImage is not a map")
    new_image = body.get("NewImage")
    if new_image is not None and not isinstance(new_image, dict):
        raise MalformedRecordError("NewImage is not a map")
    identity = raw.get("userIdentity")
    # Positional: keyword arguments cost a third more on the hot path. The field order is
    # event_id, event_name, sequence_number, position, created_ms, partition_key, keys,
    # old_image, new_image, user_identity.
    return StreamRecord(
        event_id, event_name, sequence, sequence.zfill(SEQUENCE_WIDTH), created_ms,
        partition_key, keys, old_image, new_image,
        identity if isinstance(identity, dict) else None,
    )


def _created_ms(value: Any) -> int:
    """Epoch milliseconds of a creation time that is not whole seconds before 5138.

    Past 1e11 the value is read as milliseconds; either way it must fall where the
    windows can represent it, so no window key or archive date overflows later.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        math.isfinite(value) and value > 0
    ):
        raise MalformedRecordError(f"missing or invalid ApproximateCreationDateTime {value!r}")
    millis = int(value) if value >= _MS_THRESHOLD else int(value * 1000)
    if millis >= LATEST_MS:
        raise MalformedRecordError(f"ApproximateCreationDateTime {value!r} is past the year "
                                   "9999")
    return millis
