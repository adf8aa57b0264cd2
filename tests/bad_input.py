"""The bad-input corpus: records a stream can carry, each with its defined outcome.

``processed``: the record counts or is archived; ``skipped``: logged with ``reason`` and
counted as malformed; ``ignored``: not the aggregator's business (counted, not logged).
Whatever the case, the valid records of the same batch are processed and the handler
never raises.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.factories import audit_image, audit_removal, bucket_record

Record = dict[str, Any]


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], Any]
    outcome: str
    reason: str = ""


def _bucket(**changes: Any) -> Record:
    record = bucket_record("MODIFY", {"rpm": 1000}, {"rpm": 2000})
    for path, value in changes.items():
        target = record
        *parents, leaf = path.split(".")
        for part in parents:
            target = target[part]
        if value is _DELETE:
            del target[leaf]
        else:
            target[leaf] = value
    return record


_DELETE = object()
_TC = "dynamodb.NewImage.b_rpm_tc"


def _at(moment: datetime) -> Record:
    return bucket_record("MODIFY", {"rpm": 1000}, {"rpm": 2000}, created=moment.timestamp())


def _audit_with(name: str, value: Any) -> Record:
    image = audit_image()
    image["details"] = {"M": {name: value}}
    return audit_removal(image)


def _keys_only() -> Record:
    record = bucket_record("MODIFY", {"rpm": 1000}, {"rpm": 2000})
    body = record["dynamodb"]
    del body["NewImage"], body["OldImage"]
    body["StreamViewType"] = "KEYS_ONLY"
    return record


def _new_image_only() -> Record:
    record = bucket_record("MODIFY", {"rpm": 1000}, {"rpm": 2000})
    del record["dynamodb"]["OldImage"]
    record["dynamodb"]["StreamViewType"] = "NEW_IMAGE"
    return record


def _audit_keys_only() -> Record:
    record = audit_removal()
    del record["dynamodb"]["OldImage"]
    return record


def _near_400_kb() -> Record:
    return _audit_with("payload", {"S": "x" * 395_000})


CORPUS: tuple[Case, ...] = (
    Case("two type descriptors", lambda: _bucket(**{_TC: {"N": "1", "S": "1"}}), "skipped",
         "not a whole DynamoDB number"),
    Case("no type descriptor", lambda: _bucket(**{_TC: {}}), "skipped",
         "not a whole DynamoDB number"),
    Case("unknown descriptor", lambda: _bucket(**{_TC: {"X": "1"}}), "skipped",
         "not a whole DynamoDB number"),
    Case("empty number", lambda: _bucket(**{_TC: {"N": ""}}), "skipped",
         "not a whole DynamoDB number"),
    Case("non-numeric number", lambda: _bucket(**{_TC: {"N": "12abc"}}), "skipped",
         "not a whole DynamoDB number"),
    Case("39-digit number", lambda: _bucket(**{_TC: {"N": "1" * 39}}), "skipped",
         "not a whole DynamoDB number"),
    Case("1E+127", lambda: _bucket(**{_TC: {"N": "1E+127"}}), "skipped",
         "not a whole DynamoDB number"),
    Case("unknown descriptor in an archived record", lambda: _audit_with("x", {"Q": "1"}),
         "skipped", "unknown type descriptor"),
    Case("39 digits in an archived record", lambda: _audit_with("x", {"N": "9" * 39}),
         "skipped", "38 significant digits"),
    Case("1E+127 in an archived record", lambda: _audit_with("x", {"N": "1E+127"}),
         "skipped", "outside DynamoDB's number range"),
    Case("valid base64 binary", lambda: _audit_with("blob", {"B": "AAEC"}), "processed"),
    Case("invalid base64 binary", lambda: _audit_with("blob", {"B": "***"}), "skipped",
         "not valid base64"),
    Case("string, number and binary sets",
         lambda: _audit_with("sets", {"M": {"ss": {"SS": ["b", "a"]}, "ns": {"NS": ["2", "1"]},
                                            "bs": {"BS": ["AQ==", "AA=="]}}}), "processed"),
    Case("lone surrogate", lambda: _audit_with("name", {"S": "bad \ud800 text"}), "skipped",
         "not valid Unicode"),
    Case("KEYS_ONLY stream view", _keys_only, "skipped", "NEW_AND_OLD_IMAGES"),
    Case("NEW_IMAGE stream view", _new_image_only, "skipped", "MODIFY without OldImage"),
    Case("archived removal without its old image", _audit_keys_only, "skipped",
         "REMOVE without OldImage"),
    Case("unknown event name", lambda: _bucket(eventName="UPSERT"), "skipped",
         "unknown eventName"),
    Case("missing sequence number", lambda: _bucket(**{"dynamodb.SequenceNumber": _DELETE}),
         "skipped", "SequenceNumber"),
    Case("sequence number that is not a number",
         lambda: _bucket(**{"dynamodb.SequenceNumber": "12-34"}), "skipped", "SequenceNumber"),
    Case("missing keys", lambda: _bucket(**{"dynamodb.Keys": _DELETE}), "skipped", "Keys"),
    Case("missing entity", lambda: _bucket(**{"dynamodb.NewImage.entity_id": _DELETE}),
         "skipped", "missing entity_id"),
    Case("a record that is not an object", lambda: "MODIFY", "skipped", "not an object"),
    Case("creation time in milliseconds",
         lambda: _bucket(**{"dynamodb.ApproximateCreationDateTime": 1_700_000_000_000}),
         "processed"),
    Case("creation time in the future", lambda: _at(datetime(2100, 1, 1, tzinfo=UTC)),
         "processed"),
    Case("creation time 24 hours old", lambda: _at(datetime(2023, 11, 13, 22, tzinfo=UTC)),
         "processed"),
    Case("last millisecond of a month",
         lambda: _at(datetime(2024, 2, 29, 23, 59, 59, 999_000, tzinfo=UTC)), "processed"),
    Case("first second of a year", lambda: _at(datetime(2025, 1, 1, tzinfo=UTC)), "processed"),
    Case("record near 400 KB", _near_400_kb, "processed"),
    Case("an item the aggregator does not use",
         lambda: _bucket(**{"dynamodb.Keys.PK": {"S": "ns/ENTITY#user-1"}}), "ignored"),
)


def build(case: Case) -> Any:
    return copy.deepcopy(case.build())
