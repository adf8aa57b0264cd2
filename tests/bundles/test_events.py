"""S3 event messages from SQS: keys decoded, test events and bad bodies recognised."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local_aws.bundles_harness import TEST_EVENT_BODY, Uploaded, s3_event_body
from local_aws.event_source_mapping import sqs_record
from streamagg_bundles.s3_events import parse_message
from streamagg_engine.errors import MalformedRecordError

MOMENT = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)


def uploaded(key: str = "in/a b.csv", *, version: str | None = "v1", etag: str = "abc",
             bucket: str = "ingest") -> Uploaded:
    return Uploaded(bucket, key, 12, etag, version, "0A", MOMENT)


@given(st.text(min_size=1, max_size=200).filter(lambda k: "\x00" not in k))
def test_any_key_survives_s3_url_encoding(key: str) -> None:
    (obj,) = parse_message(sqs_record("m1", s3_event_body([uploaded(key)]))).objects
    assert obj.key == key


def test_spaces_arrive_as_plus_and_plus_as_percent_2b() -> None:
    body = s3_event_body([uploaded("a b+c%/ü.csv")])
    assert '"a+b%2Bc%25/%C3%BC.csv"' in body
    (obj,) = parse_message(sqs_record("m1", body)).objects
    assert obj.key == "a b+c%/ü.csv"


def test_an_event_record_becomes_a_source_object() -> None:
    message = parse_message(sqs_record("m1", s3_event_body([uploaded()])))
    (obj,) = message.objects
    assert message.message_id == "m1"
    assert (obj.bucket, obj.key, obj.size, obj.etag, obj.version_id, obj.event_time) == \
        ("ingest", "in/a b.csv", 12, "abc", "v1", MOMENT)


def test_a_new_version_is_a_new_object_and_the_same_version_the_same() -> None:
    def identity(obj: Uploaded) -> str:
        return parse_message(sqs_record("m", s3_event_body([obj]))).objects[0].identity

    assert identity(uploaded(version="v1")) == identity(uploaded(version="v1"))
    assert identity(uploaded(version="v1")) != identity(uploaded(version="v2"))
    assert identity(uploaded(version=None, etag="e1")) != identity(uploaded(version=None,
                                                                            etag="e2"))


def test_the_s3_test_event_carries_no_object() -> None:
    message = parse_message(sqs_record("m1", TEST_EVENT_BODY))
    assert message.test_event
    assert message.objects == ()


def test_an_sns_envelope_is_unwrapped() -> None:
    inner = s3_event_body([uploaded()])
    body = json.dumps({"Type": "Notification", "Message": inner})
    assert parse_message(sqs_record("m1", body)).objects[0].key == "in/a b.csv"


def test_other_event_types_are_ignored_not_failed() -> None:
    document = json.loads(s3_event_body([uploaded()]))
    document["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    message = parse_message(sqs_record("m1", json.dumps(document)))
    assert message.objects == ()
    assert message.ignored_records == 1


def _with(change: dict[str, object]) -> str:
    document = json.loads(s3_event_body([uploaded()]))
    obj = document["Records"][0]["s3"]["object"]
    for name, value in change.items():
        if value is None:
            obj.pop(name)
        else:
            obj[name] = value
    return json.dumps(document)


@pytest.mark.parametrize(("body", "reason"), [
    ("{not json", "body is not JSON"),
    ("[1, 2]", "body is not a JSON object"),
    ('{"Records": []}', "body has no S3 event Records"),
    ('{"Records": [{"eventName": "ObjectCreated:Put"}]}', "Records[0].s3 is missing"),
    (_with({"key": None}), "Records[0].s3.object.key is missing"),
    (_with({"size": -1}), "size is not a size"),
    (_with({"size": "12"}), "size is not a size"),
    (_with({"eTag": ""}), "eTag is missing or empty"),
    (_with({"key": "%FF%FE"}), "not URL-encoded UTF-8"),
    (_with({"versionId": 7}), "versionId is not a version id"),
])
def test_a_malformed_body_is_rejected_with_its_reason(body: str, reason: str) -> None:
    with pytest.raises(MalformedRecordError) as caught:
        parse_message(sqs_record("m1", body))
    assert reason in caught.value.reason


def test_a_record_without_a_message_id_is_malformed() -> None:
    with pytest.raises(MalformedRecordError, match="messageId"):
        parse_message({"body": TEST_EVENT_BODY})
