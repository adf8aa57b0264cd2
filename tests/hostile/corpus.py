"""The hostile-input corpus: bad or edge inputs for each of the four pipelines.

Each :class:`Case` builds, for a fresh world, the records placed in front of the
world's valid records, and says what must become of them:

* ``skipped``: logged as a skipped record (with its id and a reason), never failed;
* ``processed``: an edge a real source can send, taken as it is (no skip);
* ``isolated``: the bad part is left out (an object no one can read, one bad event
  record of a message) and the rest of what came with it has its effect.

``check`` adds what the case itself must show beyond the valid neighbours' effect.
``xfail`` names the pipeline change a case still waits for.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local_aws.bundles_harness import s3_event_body
from tests.factories import NS, audit_image, audit_removal, bucket_record
from tests.hostile.worlds import (
    FORBIDDEN_BUCKET,
    REFUSED,
    SOURCE_BUCKET,
    BundlesWorld,
    EventsWorld,
    ProjectionWorld,
    UsageWorld,
    World,
    event_document,
    event_record,
    projection_image,
    projection_record,
    raw_event_record,
    sqs_message,
    usage_sequence,
)


@dataclass(frozen=True)
class Case:
    pipeline: str
    name: str
    build: Callable[[Any], list[Any]]
    outcome: str = "skipped"
    check: Callable[[Any], None] | None = None
    xfail: str = ""

    @property
    def id(self) -> str:
        return f"{self.pipeline}: {self.name}"


TIMES = {
    "before year 1 in UTC": "0001-01-01T00:00:00+01:00",
    "after year 9999 in UTC": "9999-12-31T23:59:59-01:00",
    "December 9999": "9999-12-31T23:59:59Z",
    "year 1": "0001-01-01T00:00:00Z",
    "before 1970": "1969-12-31T23:59:59Z",
    "February 30": "2026-02-30T00:00:00Z",
    "hour 24": "2026-01-31T24:00:00Z",
    "offset of 24 hours": "2026-01-31T23:30:00+24:00",
    "100,000 characters": "2" * 100_000,
    "empty": "",
    "lone surrogate": "\ud83d2026-01-31T23:30:00Z",
}
"""Times at and past the ends of the calendar, and strings that are not times."""

STRINGS = {
    "lone high surrogate": "\ud83d",
    "lone low surrogate inside": "ab\udc00cd",
    "empty": "",
}


def _nested_map(depth: int, leaf: dict[str, Any] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = leaf or {"S": "deep"}
    for _ in range(depth):
        value = {"M": {"x": value}}
    return value


def _nested_list(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"N": "1"}
    for _ in range(depth):
        value = {"L": [value]}
    return value


def _nested_json(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"x": value}
    return value


def _short(raw: str) -> str:
    return raw if len(raw) <= 24 else f"{raw[:12]}... ({len(raw):,} characters)"


# --- usage snapshots ---------------------------------------------------------------------

def _bucket(**body: Any) -> Callable[[UsageWorld], list[Any]]:
    def build(_: UsageWorld) -> list[Any]:
        record = bucket_record("MODIFY", {"tpm": 0}, {"tpm": 3000}, entity="bad",
                               sequence=usage_sequence())
        for path, value in body.items():
            target = record
            *parents, leaf = path.split("__")
            for part in parents:
                target = target[part]
            target[leaf] = value
        return [record]
    return build


def _audit(timestamp: str = "2023-11-14T22:13:20Z",
           details: dict[str, Any] | None = None) -> Callable[[UsageWorld], list[Any]]:
    def build(_: UsageWorld) -> list[Any]:
        image = audit_image("bad", "01JBAD", timestamp=timestamp, details=details)
        return [audit_removal(image, sequence=usage_sequence())]
    return build


def _usage_entity(entity: str = "bad", resource: str = "gpt-4",
                  pk: str | None = None) -> Callable[[UsageWorld], list[Any]]:
    def build(_: UsageWorld) -> list[Any]:
        record = bucket_record("MODIFY", {"tpm": 0}, {"tpm": 3000}, entity=entity,
                               resource=resource, sequence=usage_sequence())
        if pk is not None:
            for image in (record["dynamodb"]["Keys"], record["dynamodb"]["NewImage"],
                          record["dynamodb"]["OldImage"]):
                image["PK"] = {"S": pk}
        return [record]
    return build


def _twice(world: UsageWorld) -> list[Any]:
    record = bucket_record("MODIFY", {"tpm": 0}, {"tpm": 5000}, entity="twice",
                           sequence=usage_sequence())
    return [record, copy.deepcopy(record)]


def _counted_once(world: UsageWorld) -> None:
    twice = [i for i in world.ddb.items("usage") if i.get("entity_id") == {"S": "twice"}]
    assert {i["tpm"]["N"] for i in twice} == {"5"}


def _archived_under_removal_day(world: UsageWorld) -> None:
    keys = [key for _, key in world.s3.objects if "audit-" in key]
    assert any("year=2023/month=11/day=14" in key for key in keys)


USAGE: list[Case] = [
    *(Case("usage", f"creation time {name}", _bucket(dynamodb__ApproximateCreationDateTime=v))
      for name, v in {
          "infinite": float("inf"), "NaN": float("nan"), "negative": -1, "zero": 0,
          "1e300": 1e300, "2**70": 2**70,
          "a string": "1700000000", "true": True, "1e20 ms": 1e20,
          "December 9999 in ms": 253_399_622_400_000,
      }.items()),
    Case("usage", "creation time of 12 digits, read as milliseconds", outcome="processed",
         build=_bucket(dynamodb__ApproximateCreationDateTime=253_402_300_800)),
    Case("usage", "creation time in November 9999", outcome="processed",
         build=_bucket(dynamodb__ApproximateCreationDateTime=253_399_622_399)),
    *(Case("usage", f"audit timestamp {name}", _audit(timestamp=value), outcome="processed",
           check=_archived_under_removal_day)
      for name, value in TIMES.items() if name != "lone surrogate"),
    Case("usage", "audit timestamp with a lone surrogate", _audit(timestamp=TIMES[
        "lone surrogate"])),
    Case("usage", "audit details nested 33 maps deep", _audit(details=_nested_map(33))),
    Case("usage", "audit details nested 100,000 maps deep",
         _audit(details=_nested_map(100_000))),
    Case("usage", "audit details nested 40 lists deep",
         _audit(details={"M": {"l": _nested_list(40)}})),
    Case("usage", "audit details nested 20 levels", _audit(details=_nested_map(20)),
         outcome="processed"),
    Case("usage", "audit detail with a lone surrogate",
         _audit(details={"M": {"name": {"S": "emoji \ud83d cut"}}})),
    Case("usage", "audit detail map key with a lone surrogate",
         _audit(details={"M": {"\udc00": {"S": "x"}}})),
    Case("usage", "audit detail number 1e400000", _audit(details={"M": {"n": {"N": "1e400000"}}})),
    Case("usage", "audit detail number of 10,000 digits",
         _audit(details={"M": {"n": {"N": "9" * 10_000}}})),
    Case("usage", "audit detail that is not DynamoDB JSON",
         _audit(details={"M": {"n": [1, 2]}})),
    Case("usage", "entity with a lone surrogate", _usage_entity(entity="bad\ud83d")),
    Case("usage", "resource with a lone surrogate", _usage_entity(resource="\udc00gpt")),
    Case("usage", "partition key with a lone surrogate",
         _usage_entity(pk=f"{NS}/BUCKET#\ud83d#gpt-4#0")),
    Case("usage", "eventID with a lone surrogate", _bucket(eventID="evt-\ud83d")),
    Case("usage", "eventID that is a map", _bucket(eventID={"S": "x"})),
    Case("usage", "sequence number in Arabic digits", _bucket(dynamodb__SequenceNumber="١٢٣")),
    Case("usage", "sequence number of 41 digits", _bucket(dynamodb__SequenceNumber="9" * 41)),
    Case("usage", "Keys that is a list", _bucket(dynamodb__Keys=[1])),
    Case("usage", "NewImage that is a string", _bucket(dynamodb__NewImage="x")),
    Case("usage", "counter of 10,000 digits",
         _bucket(dynamodb__NewImage__b_tpm_tc={"N": "9" * 10_000})),
    Case("usage", "counter 1e400000", _bucket(dynamodb__NewImage__b_tpm_tc={"N": "1e400000"})),
    Case("usage", "record that is a list", lambda _: [[1, 2]]),
    Case("usage", "record that is null", lambda _: [None]),
    Case("usage", "entity of 2,100 bytes: partition key over 2,048",
         _usage_entity(entity="e" * 2100)),
    Case("usage", "resource of 1,100 bytes: sort key over 1,024",
         _usage_entity(resource="r" * 1100)),
    Case("usage", "entity of 1,030 bytes: index keys over 1,024",
         _usage_entity(entity="e" * 1030)),
    Case("usage", "key without a namespace: empty GSI4PK",
         _usage_entity(pk="BUCKET#bad#gpt-4#0")),
    Case("usage", "the same stream record twice in one batch", _twice, outcome="processed",
         check=_counted_once),
]


# --- event metrics ---------------------------------------------------------------------

def _event(**overrides: Any) -> Callable[[EventsWorld], list[Any]]:
    return lambda _: [event_record(event_document(**overrides))]


def _raw_event(field: str, raw: str) -> Callable[[EventsWorld], list[Any]]:
    """The event with ``field`` set to ``raw`` JSON text, as a producer could send it."""
    def build(_: EventsWorld) -> list[Any]:
        doc = event_document(value=None)
        doc.pop("value")
        doc[field] = "__RAW__"
        return [raw_event_record(json.dumps(doc).replace('"__RAW__"', raw).encode())]
    return build


def _envelope(**changes: Any) -> Callable[[EventsWorld], list[Any]]:
    def build(_: EventsWorld) -> list[Any]:
        record = event_record(event_document())
        for path, value in changes.items():
            target = record
            *parents, leaf = path.split("__")
            for part in parents:
                target = target[part]
            target[leaf] = value
        return [record]
    return build


def _lookup(variant: str | None = None, assigned_at: str | None = None,
            name: str | None = None) -> Callable[[EventsWorld], list[Any]]:
    """An event of user ``mallory`` whose lookup items carry the hostile values."""
    def build(world: EventsWorld) -> list[Any]:
        item: dict[str, Any] = {"pk": {"S": "ASSIGNMENT#exp-2#mallory"}}
        if variant is not None:
            item["variant"] = {"S": variant}
        if assigned_at is not None:
            item["assigned_at"] = {"S": assigned_at}
        world.ddb.put_item(TableName="experiment-lookups", Item=item)
        world.ddb.put_item(TableName="experiment-lookups", Item={
            "pk": {"S": "EXPERIMENT#exp-2"}, "name": {"S": name or "Second"}})
        return [event_record(event_document(user_id="mallory", experiment_id="exp-2"))]
    return build


def _event_refused(_: EventsWorld) -> list[Any]:
    """An event whose marker DynamoDB refuses (an attribute it will not take), sharing its
    transaction with the valid events: the transaction is split, they are counted."""
    return [event_record(event_document(event_id=REFUSED, user_id="alice"))]


def _event_twice(_: EventsWorld) -> list[Any]:
    record = event_record(event_document("ev-twice", event_type="click"))
    return [record, copy.deepcopy(record)]


def _clicks_counted_once(world: EventsWorld) -> None:
    item = world.ddb.get_item(TableName="event-metrics", Key={
        "pk": {"S": "EXP#exp-1"},
        "sk": {"S": "hourly#2026-01-31T23:00:00Z#VARIANT#unassigned"}})["Item"]
    assert item["n_click"]["N"] == "1"


EVENTS: list[Case] = [
    *(Case("events", f"timestamp {name}", _event(timestamp=value))
      for name, value in TIMES.items()),
    *(Case("events", f"timestamp {_short(raw)}", _raw_event("timestamp", raw)) for raw in (
        "1e400000", "-1e400000", "1e-400000", "1E+30", "9" * 4000, "9" * 5000, "1769900000000.5",
        "NaN", "Infinity", "253402300800000", "true", "[1769900000000]")),
    *(Case("events", f"value {_short(raw)}", _raw_event("value", raw)) for raw in (
        "1e400000", "1e-400000", "1" + "0" * 50, "0.0000001", "1e12", "-1e12",
        "12.5" + "0" * 60 + "1", "9" * 4299)),
    *(Case("events", f"{field} {name}", _event(**{field: value}))
      for field in ("event_id", "user_id", "experiment_id")
      for name, value in {**STRINGS, "129 characters": "a" * 129, "with a space": "a b",
                          "non-ASCII": "é"}.items()),
    Case("events", "properties nested 33 levels", _event(properties=_nested_json(33))),
    Case("events", "properties nested 100,000 levels",
         _raw_event("properties", '{"x":' * 100_000 + "1" + "}" * 100_000)),
    Case("events", "properties string with a lone surrogate",
         _event(properties={"name": "emoji \ud83d cut"})),
    Case("events", "properties key with a lone surrogate", _event(properties={"\udc00": 1})),
    Case("events", "properties number 1e400000", _raw_event("properties", '{"n": 1e400000}')),
    Case("events", "properties that is a string", _event(properties="x")),
    Case("events", "properties nested 10 levels", _event(properties=_nested_json(10)),
         outcome="processed"),
    Case("events", "arrival time infinite",
         _envelope(kinesis__approximateArrivalTimestamp=float("inf"))),
    Case("events", "arrival time NaN",
         _envelope(kinesis__approximateArrivalTimestamp=float("nan"))),
    Case("events", "arrival time negative", _envelope(kinesis__approximateArrivalTimestamp=-1.0)),
    Case("events", "arrival time 1e300", _envelope(kinesis__approximateArrivalTimestamp=1e300)),
    Case("events", "arrival time a string", _envelope(kinesis__approximateArrivalTimestamp="x"),
         outcome="processed"),
    Case("events", "sequence number with a letter", _envelope(kinesis__sequenceNumber="12a")),
    Case("events", "sequence number in Arabic digits", _envelope(kinesis__sequenceNumber="١٢٣")),
    Case("events", "sequence number of 200 digits", _envelope(kinesis__sequenceNumber="9" * 200)),
    Case("events", "sequence number that is a number", _envelope(kinesis__sequenceNumber=123)),
    Case("events", "eventID with a lone surrogate", _envelope(eventID="shard:\ud83d")),
    Case("events", "eventID that is a map", _envelope(eventID={"a": 1}), outcome="processed"),
    Case("events", "eventID naming a shard of 10,000 characters",
         _envelope(eventID="s" * 10_000 + ":100"), outcome="processed"),
    Case("events", "partition key with a lone surrogate",
         _envelope(kinesis__partitionKey="\ud83d")),
    Case("events", "data that is not base64", _envelope(kinesis__data="!!!")),
    Case("events", "data that is not UTF-8", lambda _: [raw_event_record(b"\xff\xfe")]),
    Case("events", "data that is JSON null", lambda _: [raw_event_record(b"null")]),
    Case("events", "data that is a JSON list", lambda _: [raw_event_record(b"[]")]),
    Case("events", "data with an escaped lone surrogate",
         lambda _: [raw_event_record(json.dumps(event_document(
             value=None, event_id="\\ud83d")).replace("\\\\", "\\").encode())]),
    Case("events", "data larger than a Kinesis record",
         _envelope(kinesis__data="A" * (1_500_000))),
    Case("events", "kinesis that is a list", _envelope(kinesis=[1])),
    Case("events", "record that is a string", lambda _: ["kinesis"]),
    Case("events", "record that is null", lambda _: [None]),
    Case("events", "variant of 2,000 characters: sort key over 1,024",
         _lookup(variant="v" * 2000)),
    Case("events", "variant with a lone surrogate", _lookup(variant="\ud83d")),
    Case("events", "experiment name with a lone surrogate", _lookup(name="\udc00")),
    Case("events", "assignment time before year 1 in UTC", _lookup(
        variant="blue", assigned_at=TIMES["before year 1 in UTC"]), outcome="processed"),
    Case("events", "assignment time of 100,000 characters", _lookup(
        variant="blue", assigned_at=TIMES["100,000 characters"]), outcome="processed"),
    Case("events", "a transaction DynamoDB refuses", _event_refused),
    Case("events", "the same record twice in one batch", _event_twice, outcome="processed",
         check=_clicks_counted_once),
]


# --- object bundles --------------------------------------------------------------------

def _message(body: Any) -> Callable[[BundlesWorld], list[Any]]:
    def build(_: BundlesWorld) -> list[Any]:
        record = sqs_message("")
        record["body"] = body
        return [record]
    return build


def _s3_event(**changes: Any) -> Callable[[BundlesWorld], list[Any]]:
    """A message announcing a real object, with the event record's fields changed."""
    def build(world: BundlesWorld) -> list[Any]:
        obj = world.s3.add(SOURCE_BUCKET, "in/bad.csv", b"bad")
        document = json.loads(s3_event_body([obj]))
        record = document["Records"][0]
        for path, value in changes.items():
            target = record
            *parents, leaf = path.split("__")
            for part in parents:
                target = target[part]
            target[leaf] = value
        return [sqs_message(json.dumps(document))]
    return build


def _unreadable(bucket: str) -> Callable[[BundlesWorld], list[Any]]:
    """A well-formed event for an object in ``bucket``, which cannot be read."""
    def build(world: BundlesWorld) -> list[Any]:
        obj = world.s3.add(SOURCE_BUCKET, "in/elsewhere.csv", b"x")
        document = json.loads(s3_event_body([obj]))
        document["Records"][0]["s3"]["bucket"]["name"] = bucket
        return [sqs_message(json.dumps(document))]
    return build


def _left_out(world: BundlesWorld) -> None:
    assert all("elsewhere" not in i for i in world.bundled())


def _one_bad_record_of_two(world: BundlesWorld) -> list[Any]:
    obj = world.s3.add(SOURCE_BUCKET, "in/neighbour.csv", b"neighbour")
    document = json.loads(s3_event_body([obj, obj]))
    document["Records"][0]["eventTime"] = TIMES["before year 1 in UTC"]
    world.neighbour = obj  # type: ignore[attr-defined]
    return [sqs_message(json.dumps(document))]


def _neighbour_bundled(world: BundlesWorld) -> None:
    assert world.bundled().count(world.neighbour.identity) == 1  # type: ignore[attr-defined]


def _message_twice(world: BundlesWorld) -> list[Any]:
    obj = world.s3.add(SOURCE_BUCKET, "in/twice.csv", b"twice")
    world.neighbour = obj  # type: ignore[attr-defined]
    message = sqs_message(s3_event_body([obj]))
    return [message, copy.deepcopy(message), sqs_message(s3_event_body([obj]))]


_SNS_DEEP = json.dumps({"Type": "Notification", "Message": "[" * 100_000 + "]" * 100_000})
_BODIES: dict[str, Any] = {
    "that is not JSON": "{not json", "nested 100,000 levels": "[" * 100_000 + "]" * 100_000,
    "null": "null", "a string": '"x"', "a number": "1", "with Records a string":
    '{"Records": "x"}', "with Records a map": '{"Records": {}}', "with Records of numbers":
    '{"Records": [1]}', "with Records of null": '{"Records": [null]}', "that is null": None,
    "that is a map": {"Records": []}, "SNS message nested 100,000 levels": _SNS_DEEP,
}

BUNDLES: list[Case] = [
    *(Case("bundles", f"body {name}", _message(body)) for name, body in _BODIES.items()),
    Case("bundles", "event name with a lone surrogate (not an object-created event)",
         _message('{"Records": [{"eventName": "\ud83d"}]}'), outcome="processed"),
    Case("bundles", "message without a messageId", lambda _: [{"body": "{}"}]),
    Case("bundles", "message id that is a number",
         lambda _: [{**sqs_message("{}"), "messageId": 7}]),
    Case("bundles", "message that is a string", lambda _: ["message"]),
    *(Case("bundles", f"eventTime {name}", _s3_event(eventTime=value))
      for name, value in TIMES.items()),
    *(Case("bundles", f"bucket name {name}", _s3_event(s3__bucket__name=value))
      for name, value in {"with a space": "bad bucket", "of 300 characters": "b" * 300,
                          "with a lone surrogate": "\ud83d", "with a slash": "../x",
                          "empty": ""}.items()),
    Case("bundles", "bucket that does not exist", _unreadable("no-such-bucket"),
         outcome="isolated", check=_left_out),
    Case("bundles", "bucket the function may not read", _unreadable(FORBIDDEN_BUCKET),
         outcome="isolated", check=_left_out),
    Case("bundles", "legacy bucket name that does not exist", _unreadable("Legacy_Bucket"),
         outcome="isolated", check=_left_out),
    *(Case("bundles", f"key {name}", _s3_event(s3__object__key=value)) for name, value in {
        "with a lone surrogate": "in/\ud83d.csv", "encoding a surrogate": "in/%ED%A0%BD.csv",
        "of 1,025 bytes": "k" * 1025, "empty": "", "that is a number": 7}.items()),
    Case("bundles", "key of a lone percent sign (an object that is not there)",
         _s3_event(s3__object__key="%"), outcome="processed"),
    *(Case("bundles", f"size {name}", _s3_event(s3__object__size=value)) for name, value in {
        "negative": -1, "a string": "12", "1e20": 1e20, "2**80": 2**80, "true": True,
        "null": None, "60 TiB": 60 * 1024**4}.items()),
    *(Case("bundles", f"eTag {name}", _s3_event(s3__object__eTag=value)) for name, value in {
        "empty": "", "of 2,000 characters": "e" * 2000, "with a lone surrogate": "\ud83d",
        "that is a number": 5}.items()),
    *(Case("bundles", f"versionId {name}", _s3_event(s3__object__versionId=value))
      for name, value in {"that is a number": 7, "empty": "", "with a lone surrogate": "\udc00",
                          "of 2,000 characters": "v" * 2000}.items()),
    *(Case("bundles", f"sequencer {name}", _s3_event(s3__object__sequencer=value))
      for name, value in {"that is a number": 5, "with a lone surrogate": "\ud83d"}.items()),
    Case("bundles", "s3 section that is a list", _s3_event(s3=[1])),
    Case("bundles", "one bad event record beside a good one in a message",
         _one_bad_record_of_two, outcome="isolated", check=_neighbour_bundled),
    Case("bundles", "the same message twice and its object in a third", _message_twice,
         outcome="processed", check=_neighbour_bundled),
]


# --- projection ------------------------------------------------------------------------

def _projected(old: dict[str, Any] | None = None,
               **fields: Any) -> Callable[[ProjectionWorld], list[Any]]:
    return lambda _: [projection_record(old, projection_image(**fields))]


def _projected_record(**changes: Any) -> Callable[[ProjectionWorld], list[Any]]:
    def build(_: ProjectionWorld) -> list[Any]:
        record = projection_record(None, projection_image())
        for path, value in changes.items():
            target = record
            *parents, leaf = path.split("__")
            for part in parents:
                target = target[part]
            target[leaf] = value
        return [record]
    return build


def _moved_out(world: ProjectionWorld) -> list[Any]:
    """An item projected earlier whose new image cannot be: its old items go."""
    old = projection_image("bad#old", tags=["AI"])
    world.invoke([projection_record(None, old)])
    return [projection_record(old, projection_image("bad#old", tags=["x" * 1100]))]


def _old_items_removed(world: ProjectionWorld) -> None:
    assert not [i for i in world.table.items("dashboard") if i["source_id"]["S"] == "bad#old"]


def _refused_in_a_full_chunk(world: ProjectionWorld) -> list[Any]:
    """A put DynamoDB refuses, sharing its 25-request BatchWriteItem with 24 valid ones.

    Requests go newest item first: the valid records' 4, then 45 fillers, then the
    refused one, the last of the second full chunk.
    """
    fillers = [projection_record(None, projection_image(f"fill#{i}")) for i in range(45)]
    refused = projection_record(None, projection_image(
        "bad#refused", source_type={"S": REFUSED}))
    return [refused, *fillers]


def _fillers_written(world: ProjectionWorld) -> None:
    ids = {i["source_id"]["S"] for i in world.table.items("dashboard")}
    assert {f"fill#{i}" for i in range(45)} <= ids
    assert "bad#refused" not in ids
    assert world.limited.refusals >= 1


def _projection_twice(_: ProjectionWorld) -> list[Any]:
    record = projection_record(None, projection_image("twice#1"))
    return [record, copy.deepcopy(record)]


PROJECTION: list[Case] = [
    *(Case("projection", f"ingested_at {name}", _projected(ingested_at=value))
      for name, value in TIMES.items()),
    Case("projection", "ingested_at in November 9999", outcome="processed",
         build=_projected(ingested_at="9999-11-30T23:59:59Z")),
    *(Case("projection", f"source_id {name}", _projected(source_id=value)) for name, value in {
        **STRINGS, "of 1,100 bytes: sort key over 1,024": "s" * 1100,
        "of 600 two-byte characters": "é" * 600}.items()),
    *(Case("projection", f"sentiment {name}", _projected(sentiment=value)) for name, value in {
        **STRINGS, "of 1,100 bytes: index key over 1,024": "n" * 1100,
        "with a hash": "a#b"}.items()),
    *(Case("projection", f"tag {name}", _projected(tags=[value])) for name, value in {
        **STRINGS, "of 1,100 bytes: index key over 1,024": "t" * 1100,
        "with a hash": "a#b"}.items()),
    Case("projection", "matched_tags that is a list", _projected(
        matched_tags={"L": [{"S": "AI"}]})),
    Case("projection", "text_snippet of 500 KB: item over 400 KB",
         _projected(text_snippet={"S": "t" * 500_000})),
    Case("projection", "text_snippet of 300 KB", _projected(text_snippet={"S": "t" * 300_000}),
         outcome="processed"),
    Case("projection", "source_url with a lone surrogate",
         _projected(source_url={"S": "https://x/\ud83d"})),
    *(Case("projection", f"score {name}", _projected(score=value)) for name, value in {
        "1e400000": "1e400000", "NaN": "NaN", "of 5,000 digits": "0." + "1" * 5000,
        "negative": "-0.1", "Infinity": "Infinity", "empty": ""}.items()),
    Case("projection", "score -0", _projected(score="-0"), outcome="processed"),
    Case("projection", "status that is a number", _projected(status={"N": "1"})),
    Case("projection", "an unread attribute nested 100,000 levels",
         _projected(extra=_nested_map(100_000)), outcome="processed"),
    Case("projection", "key with a lone surrogate",
         _projected_record(dynamodb__Keys={"source_id": {"S": "\ud83d"}})),
    Case("projection", "creation time infinite",
         _projected_record(dynamodb__ApproximateCreationDateTime=float("inf"))),
    Case("projection", "creation time past the year 9999",
         _projected_record(dynamodb__ApproximateCreationDateTime=1e15)),
    Case("projection", "an item whose new image cannot be projected", _moved_out,
         check=_old_items_removed),
    Case("projection", "a put DynamoDB refuses in a full 25-request chunk",
         _refused_in_a_full_chunk, check=_fillers_written),
    Case("projection", "the same record twice in one batch", _projection_twice,
         outcome="processed"),
]

CORPUS: list[Case] = [*USAGE, *EVENTS, *BUNDLES, *PROJECTION]
WORLDS: dict[str, type[World]] = {"usage": UsageWorld, "events": EventsWorld,
                                  "bundles": BundlesWorld, "projection": ProjectionWorld}
