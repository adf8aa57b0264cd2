"""SQS records carrying S3 event notifications, decoded into source objects (pure).

An SQS message body is an S3 event document (``Records[].s3``), possibly wrapped in an
SNS envelope when the bucket notifies a topic the queue subscribes to. Object keys
arrive URL-encoded with ``+`` for spaces, as S3 writes them. S3 sends one
``s3:TestEvent`` message when a notification is configured; it carries no object.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from streamagg_engine.bounds import check_text, parse_instant
from streamagg_engine.errors import MalformedRecordError

OBJECT_CREATED = "ObjectCreated:"
TEST_EVENT = "s3:TestEvent"
_BUCKET = re.compile(r"[a-zA-Z0-9._-]{1,255}")
"""What the SDK accepts as a bucket name (legacy us-east-1 names included); any other
name is refused before a request is sent, so it can never be read."""
MAX_KEY_BYTES = 1024
"""S3's key length limit."""
MAX_OBJECT_BYTES = 50 * 1024**4
"""S3's largest object (50 TiB); a larger size is not a size S3 announces."""
_MAX_TEXT = 1024
"""ETags, version ids and sequencers are short; a longer one is not S3's."""


@dataclass(frozen=True, slots=True)
class SourceObject:
    """One object version an event announced; its identity is what gets claimed."""

    bucket: str
    key: str
    """Decoded (``a%20b+c`` in the event is ``a b c`` here)."""
    size: int
    etag: str
    version_id: str | None
    """None when the bucket is not versioned."""
    sequencer: str
    """Orders events of one key; empty if the sender left it out (moto does)."""
    event_time: datetime

    @property
    def identity(self) -> str:
        """``bucket``, ``key`` and version (or ETag, unversioned), as one digest.

        A new version of a key is a new object to bundle; the same version announced
        twice (S3 and SQS both deliver at least once) is one object.
        """
        return object_identity(self.bucket, self.key, self.version_id, self.etag)


def object_identity(bucket: str, key: str, version_id: str | None, etag: str) -> str:
    """See :attr:`SourceObject.identity`; also read back from bundle manifests."""
    version = version_id or f"etag:{etag}"
    return hashlib.sha256(f"{bucket}\0{key}\0{version}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Message:
    """One SQS record: its id (what a partial batch response names) and its objects."""

    message_id: str
    objects: tuple[SourceObject, ...]
    test_event: bool = False
    ignored_records: int = 0
    """Event records that are not object-created events (a misconfigured notification)."""
    malformed: tuple[MalformedRecordError, ...] = ()
    """Event records that could not be read, skipped; the message's other objects stand."""


def message_id(raw: Any) -> str | None:
    value = raw.get("messageId") if isinstance(raw, Mapping) else None
    return value if isinstance(value, str) and value else None


def parse_message(raw: Any) -> Message:
    """Decode one SQS record, or raise MalformedRecordError naming what is wrong."""
    identifier = message_id(raw)
    if identifier is None:
        raise MalformedRecordError("SQS record without a messageId")
    body = raw.get("body")
    if not isinstance(body, str):
        raise MalformedRecordError("SQS record without a string body")
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise MalformedRecordError(f"body is not JSON: {exc}") from exc
    except RecursionError:
        raise MalformedRecordError("body is not JSON: nested too deeply") from None
    document = _unwrap_sns(document)
    if not isinstance(document, dict):
        raise MalformedRecordError("body is not a JSON object")
    if document.get("Event") == TEST_EVENT:
        return Message(identifier, (), test_event=True)
    records = document.get("Records")
    if not isinstance(records, list) or not records:
        raise MalformedRecordError("body has no S3 event Records")
    objects: list[SourceObject] = []
    malformed: list[MalformedRecordError] = []
    ignored = 0
    for index, record in enumerate(records):
        try:
            obj = _created_object(record, index)
        except MalformedRecordError as exc:
            malformed.append(exc)
            continue
        if obj is None:
            ignored += 1
        else:
            objects.append(obj)
    if malformed and not objects and not ignored:
        raise MalformedRecordError("; ".join(exc.reason for exc in malformed))
    return Message(identifier, tuple(objects), ignored_records=ignored,
                   malformed=tuple(malformed))


def _created_object(record: Any, index: int) -> SourceObject | None:
    """The object an object-created event record announces; None for other events."""
    if not isinstance(record, dict):
        raise MalformedRecordError(f"Records[{index}] is not an object")
    name = record.get("eventName")
    if not isinstance(name, str):
        raise MalformedRecordError(f"Records[{index}] has no eventName")
    if not name.startswith(OBJECT_CREATED):
        return None
    return _source_object(record, index)


def _unwrap_sns(document: Any) -> Any:
    """The S3 event inside an SNS notification (raw message delivery off)."""
    if isinstance(document, dict) and document.get("Type") == "Notification" \
            and isinstance(document.get("Message"), str):
        try:
            return json.loads(document["Message"])
        except ValueError as exc:
            raise MalformedRecordError(f"SNS Message is not JSON: {exc}") from exc
        except RecursionError:
            raise MalformedRecordError("SNS Message is not JSON: nested too deeply") from None
    return document


def _source_object(record: Mapping[str, Any], index: int) -> SourceObject:
    where = f"Records[{index}].s3"
    s3 = record.get("s3")
    if not isinstance(s3, dict):
        raise MalformedRecordError(f"{where} is missing")
    bucket = _field(s3.get("bucket"), "name", f"{where}.bucket")
    if not _BUCKET.fullmatch(bucket):
        raise MalformedRecordError(f"{where}.bucket.name {bucket[:64]!r} is not a bucket name")
    obj = s3.get("object")
    encoded_key = _field(obj, "key", f"{where}.object")
    etag = _field(obj, "eTag", f"{where}.object")
    assert isinstance(obj, dict)  # _field checked it
    sequencer = obj.get("sequencer") or ""
    if not isinstance(sequencer, str):
        raise MalformedRecordError(f"{where}.object.sequencer is not a string")
    size = obj.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_OBJECT_BYTES:
        raise MalformedRecordError(f"{where}.object.size is not a size: {str(size)[:40]}")
    version = obj.get("versionId")
    if version is not None and (not isinstance(version, str) or not version):
        raise MalformedRecordError(f"{where}.object.versionId is not a version id")
    for name, text in (("eTag", etag), ("sequencer", sequencer), ("versionId", version)):
        if text is not None and len(text) > _MAX_TEXT:
            raise MalformedRecordError(f"{where}.object.{name} is too long to be S3's")
        if text is not None:
            check_text(text, f"{where}.object.{name}")
    try:
        key = unquote_plus(encoded_key, errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedRecordError(f"{where}.object.key is not URL-encoded UTF-8") from exc
    check_text(key, f"{where}.object.key")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise MalformedRecordError(f"{where}.object.key is longer than S3's {MAX_KEY_BYTES} "
                                   "bytes")
    return SourceObject(bucket=bucket, key=key, size=size, etag=etag.strip('"'),
                        version_id=version, sequencer=sequencer,
                        event_time=_event_time(record.get("eventTime"), index))


def _field(container: Any, name: str, where: str) -> str:
    if not isinstance(container, dict):
        raise MalformedRecordError(f"{where} is missing")
    value = container.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedRecordError(f"{where}.{name} is missing or empty")
    return value


def _event_time(value: Any, index: int) -> datetime:
    """The event's time in UTC (naive means UTC), within what bundle keys can name."""
    if not isinstance(value, str):
        raise MalformedRecordError(f"Records[{index}].eventTime is missing")
    return parse_instant(value, f"Records[{index}].eventTime", naive_utc=True)
