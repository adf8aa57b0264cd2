"""Each pipeline's real handler on in-memory AWS, with valid records and their exact effect.

A *world* builds the handler's runtime with ``build_runtime`` on the in-memory DynamoDB
(``local_aws.memory``) and an in-memory S3, hands out valid records whose effect it
knows, invokes ``<pipeline>.handler.handle`` as Lambda does, and checks that the valid
records had exactly their effect. :func:`replay` delivers a batch the way Lambda's
mappings do until it is settled.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from botocore.exceptions import ClientError, ParamValidationError

import aggregator.handler as usage_handler
import streamagg_bundles.handler as bundles_handler
import streamagg_events.handler as events_handler
import streamagg_projection.handler as projection_handler
from aggregator.config import AggregatorConfig
from local_aws.bundles_harness import s3_event_body
from local_aws.event_source_mapping import sqs_record
from local_aws.events_harness import encode_event, harness_config, kinesis_record, memory_tables
from local_aws.memory import MemoryDynamoDB, MemoryS3, table_definition
from local_aws.stream_records import lambda_record
from streamagg_bundles.config import BundlerConfig
from streamagg_bundles.s3_events import SourceObject, object_identity
from streamagg_bundles.tarball import read_manifest
from streamagg_engine.windows import Window
from streamagg_projection.config import ProjectionConfig
from tests.factories import audit_removal, bucket_record

Record = Any
Invoke = Callable[[list[Record]], Mapping[str, Any]]
NOW_MS = 1_769_900_000_000


@dataclass
class Replayed:
    """Every delivery of one batch: the records handed over and what came back."""

    deliveries: list[tuple[list[Record], Mapping[str, Any] | BaseException]] = \
        field(default_factory=list)
    settled: bool = False

    @property
    def raised(self) -> list[BaseException]:
        return [r for _, r in self.deliveries if isinstance(r, BaseException)]

    def failed_ids(self) -> list[set[str]]:
        """Per delivery, the identifiers the partial batch response named."""
        return [{str(f["itemIdentifier"]) for f in r.get("batchItemFailures", [])}
                for _, r in self.deliveries if not isinstance(r, BaseException)]


def replay(invoke: Invoke, records: Sequence[Record], *, ordered: bool,
           identifier: Callable[[Record], str], deliveries: int = 5) -> Replayed:
    """Deliver ``records`` as Lambda does, at most ``deliveries`` times.

    A raise retries the same batch; a partial response from a stream retries from the
    lowest record it names (the mapping checkpointed before it); from a queue, only the
    failed messages come back. Settled when a delivery reports nothing failed.
    """
    outcome = Replayed()
    pending = list(records)
    for _ in range(deliveries):
        try:
            response = invoke(pending)
        except Exception as exc:  # Lambda's function error: recorded, then retried
            outcome.deliveries.append((pending, exc))
            continue
        outcome.deliveries.append((pending, response))
        failed = {str(f["itemIdentifier"]) for f in response.get("batchItemFailures", [])}
        if not failed:
            outcome.settled = True
            return outcome
        if ordered:
            ids = [identifier(r) for r in pending]
            first = min((ids.index(i) for i in failed if i in ids), default=0)
            pending = pending[first:]
        else:
            pending = [r for r in pending if identifier(r) in failed]
    return outcome


def log_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            found = json.loads(line)
            if isinstance(found, dict):
                lines.append(found)
    return lines


class World:
    """What every pipeline's world offers the corpus test."""

    ordered = True

    def valid(self) -> list[Record]:
        raise NotImplementedError

    def invoke(self, records: list[Record]) -> Mapping[str, Any]:
        return self.handle_event({"Records": records})

    def handle_event(self, event: Any) -> Mapping[str, Any]:
        """The real handler on ``event``, whatever its shape."""
        raise NotImplementedError

    def identifier(self, record: Record) -> str:
        raise NotImplementedError

    def check(self) -> None:
        """The valid records had exactly their effect; raises AssertionError otherwise."""
        raise NotImplementedError


# --- a DynamoDB that refuses what DynamoDB refuses ---------------------------------------

REFUSED = "refused-by-dynamodb"
"""A string value this DynamoDB refuses like an item over a limit: stands for a limit the
pipelines do not check, so the ValidationException path itself is exercised."""
_SET_PAIR = __import__("re").compile(r"(#\w+)\s*=\s*(:\w+)")


class LimitedDynamoDB:
    """:class:`MemoryDynamoDB` behind DynamoDB's documented limits: key values of 1 to
    2,048 (partition) or 1,024 (sort) bytes, index key values non-empty and at most 1,024
    bytes, strings valid UTF-8, items at most 400 KB; a request breaking one fails with
    ``ValidationException`` before anything is written, as DynamoDB's does."""

    def __init__(self, inner: MemoryDynamoDB, keys: Mapping[str, tuple[str, ...]],
                 index_keys: Sequence[str] = ()) -> None:
        self.inner = inner
        self.keys = keys
        self.index_keys = frozenset(index_keys)
        self.refusals = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_item(self, **request: Any) -> dict[str, Any]:
        self._check_item(request["TableName"], request["Item"])
        return self.inner.put_item(**request)

    def update_item(self, **request: Any) -> dict[str, Any]:
        self._check_update(request)
        return self.inner.update_item(**request)

    def batch_write_item(self, **request: Any) -> dict[str, Any]:
        for table, writes in request["RequestItems"].items():
            for write in writes:
                if "PutRequest" in write:
                    self._check_item(table, write["PutRequest"]["Item"])
                else:
                    self._check_key(table, write["DeleteRequest"]["Key"])
        return self.inner.batch_write_item(**request)

    def transact_write_items(self, **request: Any) -> dict[str, Any]:
        for action in request["TransactItems"]:
            ((kind, body),) = action.items()
            if kind == "Put":
                self._check_item(body["TableName"], body["Item"])
            elif kind == "Update":
                self._check_update(body)
            else:
                self._check_key(body["TableName"], body["Key"])
        return self.inner.transact_write_items(**request)

    def _refuse(self, why: str) -> None:
        self.refusals += 1
        raise ClientError(cast(Any, {"Error": {"Code": "ValidationException",
                                               "Message": f"One or more parameter values "
                                                          f"were invalid: {why}"}}), "Write")

    def _check_key(self, table: str, key: Mapping[str, Any]) -> None:
        for position, name in enumerate(self.keys[table]):
            if name in key:
                self._check_value(key[name], 2048 if position == 0 else 1024, name)

    def _check_value(self, value: Mapping[str, Any], limit: int, name: str) -> None:
        text = value.get("S")
        if not isinstance(text, str):
            return
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            self._refuse(f"{name} is not valid UTF-8")
        if size == 0 or size > limit:
            self._refuse(f"key attribute {name} has {size} bytes")

    def _check_item(self, table: str, item: Mapping[str, Any]) -> None:
        self._check_key(table, item)
        for name in self.index_keys & set(item):
            self._check_value(item[name], 1024, name)
        text = json.dumps(item, ensure_ascii=False)
        if REFUSED in text:
            self._refuse("refused")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            self._refuse("a string is not valid UTF-8")
        if size > 400 * 1024:
            self._refuse("item size has exceeded the maximum allowed size")

    def _check_update(self, request: Mapping[str, Any]) -> None:
        self._check_key(request["TableName"], request["Key"])
        names = request.get("ExpressionAttributeNames", {})
        values = request.get("ExpressionAttributeValues", {})
        for name_ref, value_ref in _SET_PAIR.findall(request.get("UpdateExpression", "")):
            if names.get(name_ref) in self.index_keys:
                self._check_value(values[value_ref], 1024, names[name_ref])
        text = json.dumps([request["Key"], values], ensure_ascii=False)
        if REFUSED in text:
            self._refuse("refused")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self._refuse("a string is not valid UTF-8")


# --- usage snapshots ---------------------------------------------------------------------

USAGE_CONFIG = AggregatorConfig(
    table_name="usage", archive_bucket_name="archive", enable_refill=False,
    snapshot_windows=(Window.HOURLY, Window.DAILY, Window.MONTHLY), max_workers=2)
_usage_sequence = itertools.count(5_000_000_000_000_000_000)


def usage_sequence() -> str:
    return str(next(_usage_sequence))


class UsageWorld(World):
    def __init__(self) -> None:
        self.ddb = MemoryDynamoDB()
        self.ddb.create_table(**table_definition(USAGE_CONFIG.table_name, "PK", "SK"))
        self.s3 = MemoryS3()
        limited = LimitedDynamoDB(self.ddb, {"usage": ("PK", "SK")},
                                  ("GSI2PK", "GSI2SK", "GSI4PK", "GSI4SK"))
        self.runtime = usage_handler.build_runtime(USAGE_CONFIG.to_env(), dynamodb=limited,
                                                   s3=self.s3)
        self.audit_id = f"01JGOOD{next(_usage_sequence)}"

    def valid(self) -> list[Record]:
        from tests.factories import audit_image  # noqa: PLC0415 - one builder, one use

        return [bucket_record("MODIFY", {"tpm": 0}, {"tpm": 7000}, entity="good",
                              sequence=usage_sequence()),
                audit_removal(audit_image("good", self.audit_id), sequence=usage_sequence())]

    def handle_event(self, event: Any) -> Mapping[str, Any]:
        return usage_handler.handle(event, self.runtime, now_ms=NOW_MS)

    def identifier(self, record: Record) -> str:
        return str(record["dynamodb"]["SequenceNumber"])

    def check(self) -> None:
        good = [i for i in self.ddb.items("usage") if i.get("entity_id") == {"S": "good"}]
        assert sorted((i["window"]["S"], i["tpm"]["N"]) for i in good) == \
            [("daily", "7"), ("hourly", "7"), ("monthly", "7")]
        lines = [json.loads(line) for body in self.s3.objects.values()
                 for line in _gunzip(body).splitlines()]
        assert [line["event_id"] for line in lines if line.get("entity_id") == "good"] == \
            [self.audit_id]


def _gunzip(body: bytes) -> str:
    import gzip  # noqa: PLC0415 - only the usage check reads archives

    return gzip.decompress(body).decode()


# --- event metrics ---------------------------------------------------------------------

EVENT_LOOKUPS = [
    {"pk": {"S": "EXPERIMENT#exp-1"}, "name": {"S": "Checkout button"}},
    {"pk": {"S": "ASSIGNMENT#exp-1#alice"}, "variant": {"S": "green"},
     "assigned_at": {"S": "2026-01-31T00:00:00Z"}},
]


def event_document(event_id: str = "ev-bad", **overrides: Any) -> dict[str, Any]:
    """An event of user ``bob``, who has no assignment: a hostile event that is counted
    lands in the ``unassigned`` variant, apart from the valid events' ``green``."""
    doc: dict[str, Any] = {"event_id": event_id, "event_type": "purchase",
                           "user_id": "bob", "experiment_id": "exp-1",
                           "timestamp": "2026-01-31T23:30:00Z", "value": Decimal("12.50")}
    doc.update(overrides)
    return doc


def event_record(data: str | Any, sequence: int = 100) -> dict[str, Any]:
    """A Kinesis record; ``data`` is a document, or base64 text already."""
    encoded = data if isinstance(data, str) else encode_event(data)
    return kinesis_record(encoded, sequence, "alice", NOW_MS / 1000)


def raw_event_record(payload: bytes, sequence: int = 100) -> dict[str, Any]:
    return event_record(base64.b64encode(payload).decode(), sequence)


class EventsWorld(World):
    def __init__(self, lookups: Sequence[Mapping[str, Any]] = EVENT_LOOKUPS) -> None:
        self.ddb = memory_tables()
        for item in lookups:
            self.ddb.put_item(TableName="experiment-lookups", Item=dict(item))
        self.s3 = MemoryS3()
        self.config = harness_config()
        limited = LimitedDynamoDB(self.ddb, {"event-metrics": ("pk", "sk"),
                                             "experiment-lookups": ("pk",)})
        self.runtime = events_handler.build_runtime(self.config.to_env(), dynamodb=limited,
                                                    s3=self.s3)

    def valid(self) -> list[Record]:
        return [event_record(event_document("ev-good-1", user_id="alice"), 200),
                event_record(event_document("ev-good-2", user_id="alice", value=Decimal(3)),
                             201)]

    def handle_event(self, event: Any) -> Mapping[str, Any]:
        return events_handler.handle(event, self.runtime, now_ms=NOW_MS)

    def identifier(self, record: Record) -> str:
        return str(record["kinesis"]["sequenceNumber"])

    def check(self) -> None:
        item = self.ddb.get_item(TableName="event-metrics", Key={
            "pk": {"S": "EXP#exp-1"},
            "sk": {"S": "hourly#2026-01-31T23:00:00Z#VARIANT#green"}}).get("Item", {})
        assert (item["events"]["N"], Decimal(item["s_purchase"]["N"])) == ("2", Decimal("15.5"))
        markers = {i["pk"]["S"] for i in self.ddb.items("event-metrics")
                   if i["sk"] == {"S": "MARKER"}}
        assert {"EVENT#ev-good-1", "EVENT#ev-good-2"} <= markers


# --- object bundles --------------------------------------------------------------------

BUNDLER_CONFIG = BundlerConfig(distribution_bucket_name="distribution",
                               idempotency_table_name="claims", max_workers=2)
SOURCE_BUCKET = "ingest"
FORBIDDEN_BUCKET = "forbidden"
"""A bucket that exists but the function may not read: AccessDenied."""
_BOTOCORE_BUCKET = __import__("re").compile(r"[a-zA-Z0-9.\-_]{1,255}")


def _s3_error(code: str, operation: str, status: int = 400) -> ClientError:
    return ClientError(cast(Any, {"Error": {"Code": code, "Message": code},
                                  "ResponseMetadata": {"HTTPStatusCode": status}}), operation)


class _Body:
    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def read(self, amount: int | None = None) -> bytes:
        return self._stream.read(amount if amount is not None else -1)

    def close(self) -> None:
        self._stream.close()


class FakeS3:
    """The S3 calls the bundler makes, answered as S3 and botocore answer them: GetObject
    (by version or If-Match ETag), HeadObject, PutObject with If-None-Match."""

    def __init__(self, buckets: Sequence[str]) -> None:
        self.buckets: dict[str, dict[str, bytes]] = {b: {} for b in buckets}

    def add(self, bucket: str, key: str, body: bytes) -> SourceObject:
        self.buckets[bucket][key] = body
        return SourceObject(bucket=bucket, key=key, size=len(body), etag=_etag(body),
                            version_id=None, sequencer="0A",
                            event_time=datetime(2026, 3, 31, 22, 30, tzinfo=UTC))

    def _bucket(self, name: str, operation: str) -> dict[str, bytes]:
        if not _BOTOCORE_BUCKET.fullmatch(name):
            raise ParamValidationError(report=f"Invalid bucket name {name!r}")
        if name == FORBIDDEN_BUCKET:
            raise _s3_error("AccessDenied", operation, 403)
        found = self.buckets.get(name)
        if found is None:
            raise _s3_error("NoSuchBucket", operation, 404)
        return found

    def get_object(self, *, Bucket: str, Key: str,  # noqa: N803 - boto3's names
                   IfMatch: str | None = None,  # noqa: N803
                   VersionId: str | None = None) -> dict[str, Any]:  # noqa: N803
        body = self._bucket(Bucket, "GetObject").get(Key)
        if body is None:
            raise _s3_error("NoSuchKey", "GetObject", 404)
        if IfMatch is not None and IfMatch.strip('"') != _etag(body):
            raise _s3_error("PreconditionFailed", "GetObject", 412)
        return {"Body": _Body(body), "ContentLength": len(body), "LastModified": None}

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        if Key not in self._bucket(Bucket, "HeadObject"):
            raise _s3_error("404", "HeadObject", 404)
        return {}

    def put_object(self, *, Bucket: str, Key: str, Body: Any,  # noqa: N803 - boto3's names
                   IfNoneMatch: str | None = None, **_: Any) -> dict[str, Any]:  # noqa: N803
        bucket = self._bucket(Bucket, "PutObject")
        if IfNoneMatch == "*" and Key in bucket:
            raise _s3_error("PreconditionFailed", "PutObject", 412)
        bucket[Key] = Body.read() if hasattr(Body, "read") else bytes(Body)
        return {}


def _etag(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


_message_ids = itertools.count(1)


def sqs_message(body: str, message_id: str | None = None) -> dict[str, Any]:
    return sqs_record(message_id or f"msg-{next(_message_ids)}", body)


class BundlesWorld(World):
    ordered = False

    def __init__(self) -> None:
        self.ddb = MemoryDynamoDB()
        self.ddb.create_table(**table_definition(BUNDLER_CONFIG.idempotency_table_name, "pk"))
        self.s3 = FakeS3([SOURCE_BUCKET, FORBIDDEN_BUCKET,
                          BUNDLER_CONFIG.distribution_bucket_name])
        limited = LimitedDynamoDB(self.ddb, {BUNDLER_CONFIG.idempotency_table_name: ("pk",)})
        self.runtime = bundles_handler.build_runtime(BUNDLER_CONFIG.to_env(), dynamodb=limited,
                                                     s3=self.s3)
        self.good = [self.s3.add(SOURCE_BUCKET, f"in/good-{i}.csv", f"good {i}".encode())
                     for i in range(2)]
        self._invocations = itertools.count(1)

    def valid(self) -> list[Record]:
        return [sqs_message(s3_event_body([obj])) for obj in self.good]

    def handle_event(self, event: Any) -> Mapping[str, Any]:
        return bundles_handler.handle(event, self.runtime, now_ms=NOW_MS,
                                      owner=f"req-{next(self._invocations)}")

    def identifier(self, record: Record) -> str:
        return str(record["messageId"])

    def bundled(self) -> list[str]:
        """Identities of every object in every bundle, as often as they are bundled."""
        found = []
        for body in self.s3.buckets[BUNDLER_CONFIG.distribution_bucket_name].values():
            manifest = read_manifest(io.BytesIO(body))
            found += [object_identity(o["bucket"], o["key"], o["version_id"], o["etag"])
                      for o in manifest["objects"]]
        return found

    def check(self) -> None:
        good = {obj.identity for obj in self.good}
        assert sorted(i for i in self.bundled() if i in good) == sorted(good)


# --- projection ------------------------------------------------------------------------

PROJECTION_CONFIG = ProjectionConfig(dashboard_table_name="dashboard", max_workers=2)
_projection_sequence = itertools.count(7_000_000_000_000_000_000)


def projection_image(source_id: str = "bad#1", *, ingested_at: str = "2025-11-16T14:30:15Z",
                     sentiment: str = "neutral", score: str = "0.72",
                     tags: list[str] | None = None, **attributes: Any) -> dict[str, Any]:
    image: dict[str, Any] = {"source_id": {"S": source_id}, "ingested_at": {"S": ingested_at},
                             "status": {"S": "analyzed"}, "sentiment": {"S": sentiment},
                             "score": {"N": score}}
    if tags is not None:
        image["matched_tags"] = {"SS": tags}
    image.update(attributes)
    return image


def projection_record(old: dict[str, Any] | None, new: dict[str, Any] | None, *,
                      keys: dict[str, Any] | None = None) -> dict[str, Any]:
    name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    source = new or old or {}
    return lambda_record(name, keys=keys if keys is not None else
                         {"source_id": source.get("source_id", {"S": "x"})},
                         sequence=str(next(_projection_sequence)), created=1_763_303_415,
                         old=old, new=new)


class ProjectionWorld(World):
    def __init__(self) -> None:
        self.table = MemoryDynamoDB()
        self.table.create_table(**table_definition("dashboard", "day_partition", "sk"))
        self.limited = LimitedDynamoDB(self.table, {"dashboard": ("day_partition", "sk")},
                                       ("sentiment_score_combined", "tag", "ingested_at"))
        self.runtime = projection_handler.build_runtime(PROJECTION_CONFIG.to_env(),
                                                        dynamodb=self.limited)

    def valid(self) -> list[Record]:
        return [projection_record(None, projection_image("good#1", tags=["AI", "europe"])),
                projection_record(None, projection_image("good#2", sentiment="positive"))]

    def handle_event(self, event: Any) -> Mapping[str, Any]:
        return projection_handler.handle(event, self.runtime, now_ms=NOW_MS)

    def identifier(self, record: Record) -> str:
        return str(record["dynamodb"]["SequenceNumber"])

    def check(self) -> None:
        good = sorted(i["sk"]["S"] for i in self.table.items("dashboard")
                      if i["source_id"]["S"].startswith("good#"))
        assert good == ["2025-11-16T14:30:15Z#good#1", "2025-11-16T14:30:15Z#good#2",
                        "TAG#AI#2025-11-16T14:30:15Z#good#1",
                        "TAG#europe#2025-11-16T14:30:15Z#good#1"]


WORLDS: dict[str, Callable[[], World]] = {
    "usage": UsageWorld, "events": EventsWorld, "bundles": BundlesWorld,
    "projection": ProjectionWorld,
}
