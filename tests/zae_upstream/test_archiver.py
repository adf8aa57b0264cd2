"""zae-limiter 0.17.0's ``tests/unit/test_archiver.py``, ported to our handler on moto.

Upstream calls its archiver's functions (``extract_audit_event``, ``_deserialize_value``,
``create_jsonl_gzip``, ``get_partition_key``, ``get_object_key``, ``archive_audit_events``)
with a mocked S3 client. Here each test sends the same stream records through
``aggregator.handler.handle`` and asserts what a user of the archive sees: the objects
in a moto bucket (their key, headers and JSON lines), the partial batch response and the
batch's completion line.

Counts: 39 upstream tests; 38 ported, 38 passing, 6 of them asserting a deviation on
purpose (each says why in its docstring): the object key (derived from the records, not
the request id or the clock, so a redelivered batch overwrites its own object), the
partition of an unusable timestamp (2 tests: the removal's day, not the clock's), a type
descriptor DynamoDB never produces (the record is skipped as malformed, not copied
through), an audit item without ``action`` (counted and logged as malformed, not dropped
silently) and an S3 failure (the records go back to Lambda to be retried, not only
logged). Upstream's returned counts are our ``batch completed`` line's.

Not ported: ``TestArchiveAuditEvents::test_archive_handles_jsonl_creation_error``
patches ``create_jsonl_gzip`` to raise; no record can make our encoder raise (its input
is what ``to_plain`` decoded and checked, and ``tests/unit/test_archiver.py`` covers it),
so the port would only test the patch.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from aggregator.config import AggregatorConfig
from aggregator.handler import build_runtime, handle
from local_aws.stream_records import lambda_record
from streamagg_engine.retries import RetryPolicy
from tests.factories import next_sequence
from tests.moto_fixtures import LocalAws
from tests.zae_upstream import support

NOW_MS = 1_705_330_200_000
"""The handler's clock: 2024-01-15T14:50:00Z."""
REMOVED_AT = 1_706_918_400.0
"""When the stream saw the removals: 2024-02-03T00:00:00Z, another day than any timestamp."""


moto, aws = support.moto, support.aws


@pytest.fixture(scope="module")
def table(aws: LocalAws) -> str:
    return aws.create_zae_table()[0]


@dataclass
class Run:
    """One handler invocation: what it answered, what landed in S3, what it logged."""

    response: dict[str, Any]
    objects: dict[str, bytes]
    completed: dict[str, Any]

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for body in self.objects.values()
                for line in gzip.decompress(body).decode("utf-8").splitlines()]

    def line(self) -> dict[str, Any]:
        (only,) = self.lines()
        return only


@dataclass
class Archive:
    aws: LocalAws
    table: str
    bucket: str
    capsys: pytest.CaptureFixture[str]

    def handle(self, records: list[Any], *, bucket: str | None = None,
               enable_archival: bool = True) -> Run:
        config = AggregatorConfig(table_name=self.table, enable_refill=False,
                                  enable_archival=enable_archival,
                                  archive_bucket_name=self.bucket if bucket is None else bucket)
        runtime = build_runtime(config.to_env(), dynamodb=self.aws.ddb, s3=self.aws.s3,
                                retries=RetryPolicy(max_attempts=1))
        self.capsys.readouterr()
        response = handle({"Records": records}, runtime, now_ms=NOW_MS)
        return Run(response, self.aws.objects(self.bucket), completion(self.capsys))


def completion(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The handler's ``batch completed`` line: the counts upstream returns in its result."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    found: list[dict[str, Any]] = [
        line for line in lines if line.get("message") in ("batch completed", "empty batch")]
    return found[-1]


@pytest.fixture
def archive(aws: LocalAws, table: str, capsys: pytest.CaptureFixture[str]) -> Archive:
    return Archive(aws, table, aws.create_bucket(), capsys)


def audit_image(
    entity_id: str = "user-123",
    event_id: str = "01HQJK123456789",
    action: str | None = "entity_created",
    timestamp: str = "2024-01-15T14:30:00Z",
    principal: str | None = "admin@example.com",
    resource: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Upstream's ``_make_audit_record`` old image (flat format v0.6.0+)."""
    image: dict[str, Any] = {
        "PK": {"S": f"default/AUDIT#{entity_id}"},
        "SK": {"S": f"#AUDIT#{event_id}"},
        "entity_id": {"S": entity_id},
        "event_id": {"S": event_id},
        "timestamp": {"S": timestamp},
        "principal": {"S": principal} if principal is not None else {"NULL": True},
        "resource": {"S": resource} if resource is not None else {"NULL": True},
        "details": details if details is not None else {"M": {}},
        "ttl": {"N": "1705330200"},
    }
    if action is not None:
        image["action"] = {"S": action}
    return image


def record(event_name: str, old: dict[str, Any] | None = None,
           new: dict[str, Any] | None = None) -> dict[str, Any]:
    """Upstream's record as Lambda sends it: the same images, with the keys, sequence
    number and event id every real record carries."""
    image = old if old is not None else new
    assert image is not None
    keys: dict[str, Any] = {name: image[name] for name in ("PK", "SK") if name in image}
    return lambda_record(event_name, keys=keys, sequence=next_sequence(), created=REMOVED_AT,
                         old=old, new=new)


def removal(**fields: Any) -> dict[str, Any]:
    return record("REMOVE", old=audit_image(**fields))


def archived_details(archive: Archive, details: dict[str, Any]) -> Any:
    """What one audit event's ``details`` map becomes in the archive."""
    return archive.handle([removal(details={"M": details})]).line()["details"]


class TestExtractAuditEvent:
    def test_extract_valid_remove_event(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestExtractAuditEvent::test_extract_valid_remove_event."""  # noqa: E501
        run = archive.handle([removal(entity_id="user-123", event_id="01HQJK123456789",
                                      action="entity_created", timestamp="2024-01-15T14:30:00Z",
                                      principal="admin@example.com")])
        line = run.line()
        assert line["event_id"] == "01HQJK123456789"
        assert line["entity_id"] == "user-123"
        assert line["action"] == "entity_created"
        assert line["timestamp"] == "2024-01-15T14:30:00Z"
        assert line["principal"] == "admin@example.com"

    def test_skip_modify_event(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestExtractAuditEvent::test_skip_modify_event."""
        run = archive.handle([record("MODIFY", old=audit_image(), new=audit_image())])
        assert run.objects == {}
        assert (run.completed["ignored"], run.response) == (1, {"batchItemFailures": []})

    def test_skip_insert_event(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestExtractAuditEvent::test_skip_insert_event."""
        run = archive.handle([record("INSERT", new=audit_image())])
        assert run.objects == {}
        assert run.completed["ignored"] == 1

    def test_skip_non_audit_record(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestExtractAuditEvent::test_skip_non_audit_record."""
        old = {"PK": {"S": "default/ENTITY#user-123"}, "SK": {"S": "#META"}, "data": {"M": {}}}
        run = archive.handle([record("REMOVE", old=old)])
        assert run.objects == {}
        assert run.completed["ignored"] == 1

    def test_handle_missing_action_field(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestExtractAuditEvent::test_handle_missing_action_field.

        Deviation: upstream returns None (dropped without a word); ours skips it too but
        counts it as malformed and logs its event id, so a lost audit event is visible.
        """
        old = {"PK": {"S": "default/AUDIT#user-123"}, "SK": {"S": "#AUDIT#01HQJK123456789"}}
        run = archive.handle([record("REMOVE", old=old)])
        assert run.objects == {}
        assert run.completed["skipped_malformed"] == 1
        assert run.response == {"batchItemFailures": []}

    def test_extract_with_nested_details(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestExtractAuditEvent::test_extract_with_nested_details."""  # noqa: E501
        details = {"M": {
            "resource": {"S": "gpt-4"},
            "limits": {"L": [{"M": {"name": {"S": "rpm"}, "capacity": {"N": "100"}}}]},
        }}
        line = archive.handle([removal(action="limits_set", details=details)]).line()
        assert line["details"]["resource"] == "gpt-4"
        assert len(line["details"]["limits"]) == 1
        assert line["details"]["limits"][0]["name"] == "rpm"
        assert line["details"]["limits"][0]["capacity"] == 100

    def test_extract_with_null_values(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestExtractAuditEvent::test_extract_with_null_values."""
        line = archive.handle([removal(principal=None, resource=None)]).line()
        assert line["principal"] is None
        assert line["resource"] is None


class TestDeserializeMap:
    """Upstream tests ``_deserialize_value`` directly; here each type travels in an audit
    event's ``details`` and is read back from the archive's JSON."""

    def test_deserialize_string(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestDeserializeMap::test_deserialize_string."""
        assert archived_details(archive, {"v": {"S": "hello"}}) == {"v": "hello"}

    def test_deserialize_number_int(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestDeserializeMap::test_deserialize_number_int."""
        value = archived_details(archive, {"v": {"N": "42"}})["v"]
        assert value == 42
        assert isinstance(value, int)

    def test_deserialize_number_float(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestDeserializeMap::test_deserialize_number_float."""
        value = archived_details(archive, {"v": {"N": "3.14"}})["v"]
        assert value == 3.14
        assert isinstance(value, float)

    def test_deserialize_bool_true(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestDeserializeMap::test_deserialize_bool_true."""
        assert archived_details(archive, {"v": {"BOOL": True}})["v"] is True

    def test_deserialize_bool_false(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestDeserializeMap::test_deserialize_bool_false."""
        assert archived_details(archive, {"v": {"BOOL": False}})["v"] is False

    def test_deserialize_null(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestDeserializeMap::test_deserialize_null."""
        assert archived_details(archive, {"v": {"NULL": True}}) == {"v": None}

    def test_deserialize_nested_map(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestDeserializeMap::test_deserialize_nested_map."""
        details = {"name": {"S": "test"}, "count": {"N": "5"},
                   "nested": {"M": {"key": {"S": "value"}}}}
        assert archived_details(archive, details) == {
            "name": "test", "count": 5, "nested": {"key": "value"}}

    def test_deserialize_list(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestDeserializeMap::test_deserialize_list."""
        details = {"v": {"L": [{"S": "a"}, {"S": "b"}, {"N": "1"}]}}
        assert archived_details(archive, details) == {"v": ["a", "b", 1]}

    def test_deserialize_unknown_type(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestDeserializeMap::test_deserialize_unknown_type.

        Deviation: upstream copies ``{"UNKNOWN": "value"}`` into the line as it is; DynamoDB
        never sends such a descriptor, so ours treats the record as malformed (logged with
        its event id and counted) rather than archive a value no reader can interpret.
        """
        run = archive.handle([removal(details={"M": {"v": {"UNKNOWN": "value"}}})])
        assert run.objects == {}
        assert run.completed["skipped_malformed"] == 1


class TestCreateJsonlGzip:
    def test_create_single_event(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestCreateJsonlGzip::test_create_single_event."""
        run = archive.handle([removal(event_id="1", action="test")])
        (body,) = run.objects.values()
        lines = gzip.decompress(body).decode("utf-8").strip().split("\n")
        assert len(lines) == 1
        assert json.loads(lines[0])["event_id"] == "1"
        assert json.loads(lines[0])["action"] == "test"

    def test_create_multiple_events(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestCreateJsonlGzip::test_create_multiple_events."""
        run = archive.handle([removal(event_id="1", action="create"),
                              removal(event_id="2", action="delete"),
                              removal(event_id="3", action="update")])
        assert [line["event_id"] for line in run.lines()] == ["1", "2", "3"]

    def test_creates_valid_gzip(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestCreateJsonlGzip::test_creates_valid_gzip."""
        (body,) = archive.handle([removal()]).objects.values()
        assert body[:2] == b"\x1f\x8b"
        gzip.decompress(body)

    def test_compact_json_format(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestCreateJsonlGzip::test_compact_json_format."""
        details = {"key": {"S": "value"}, "number": {"N": "42"}}
        (body,) = archive.handle([removal(details={"M": details})]).objects.values()
        text = gzip.decompress(body).decode("utf-8")
        assert '"details":{"key":"value","number":42}' in text
        assert ": " not in text
        assert ", " not in text


def partition(run: Run) -> str:
    (key,) = run.objects
    return key.rsplit("/", 1)[0]


class TestGetPartitionKey:
    def test_partition_key_from_timestamp(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestGetPartitionKey::test_partition_key_from_timestamp."""  # noqa: E501
        run = archive.handle([removal(timestamp="2024-01-15T14:30:00Z")])
        assert partition(run) == "audit/year=2024/month=01/day=15"

    def test_partition_key_with_timezone(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestGetPartitionKey::test_partition_key_with_timezone."""  # noqa: E501
        run = archive.handle([removal(timestamp="2024-12-25T23:59:59+00:00")])
        assert partition(run) == "audit/year=2024/month=12/day=25"

    def test_partition_key_single_digit_month(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestGetPartitionKey::test_partition_key_single_digit_month."""  # noqa: E501
        run = archive.handle([removal(timestamp="2024-03-05T10:00:00Z")])
        assert partition(run) == "audit/year=2024/month=03/day=05"

    def test_partition_key_invalid_timestamp_fallback(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestGetPartitionKey::test_partition_key_invalid_timestamp_fallback.

        Deviation: upstream falls back to the current time; ours to the day the stream
        saw the removal, so a redelivered record lands in the same object (and the
        event is still archived, in the right format).
        """  # noqa: E501
        run = archive.handle([removal(timestamp="not-a-timestamp")])
        assert partition(run) == "audit/year=2024/month=02/day=03"
        assert run.line()["timestamp"] == "not-a-timestamp"

    def test_partition_key_empty_timestamp(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestGetPartitionKey::test_partition_key_empty_timestamp.

        Deviation as above: the removal's day, not the clock's.
        """
        run = archive.handle([removal(timestamp="")])
        assert partition(run) == "audit/year=2024/month=02/day=03"


class TestGetObjectKey:
    def test_object_key_format(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestGetObjectKey::test_object_key_format.

        Deviation: upstream names the object ``audit-{request id}-{clock}.jsonl.gz``; ours
        ``audit-{first removal time}-{first sequence}-{last sequence}.jsonl.gz``, derived
        from the records, so a retried batch overwrites its own object instead of adding
        a copy of every event (README "Archive").
        """
        first, last = removal(event_id="a"), removal(event_id="b")
        run = archive.handle([first, last])
        (key,) = run.objects
        seq = (first["dynamodb"]["SequenceNumber"], last["dynamodb"]["SequenceNumber"])
        assert key == (f"audit/year=2024/month=01/day=15/"
                       f"audit-20240203T000000Z-{seq[0]}-{seq[1]}.jsonl.gz")

    def test_object_key_sanitizes_colons(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestGetObjectKey::test_object_key_sanitizes_colons."""
        (key,) = archive.handle([removal(timestamp="2024-01-15T14:30:45Z")]).objects
        assert ":" not in key

    def test_object_key_sanitizes_plus(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestGetObjectKey::test_object_key_sanitizes_plus."""
        (key,) = archive.handle([removal(timestamp="2024-01-15T14:30:45+00:00")]).objects
        assert "+" not in key


class TestArchiveAuditEvents:
    """Upstream's ``ArchiveResult`` counts are our completion line's ``records``,
    ``archived_records`` and ``archive_objects``; its ``errors`` are our partial batch
    response and ``skipped_malformed``."""

    def test_archive_single_event(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestArchiveAuditEvents::test_archive_single_event."""
        run = archive.handle([removal(entity_id="user-1", event_id="evt-1",
                                      action="entity_created")])
        done = run.completed
        assert (done["records"], done["archived_records"], done["archive_objects"]) == (1, 1, 1)
        assert run.response == {"batchItemFailures": []}
        assert len(run.objects) == 1

    def test_archive_multiple_events(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestArchiveAuditEvents::test_archive_multiple_events."""
        run = archive.handle([removal(entity_id=f"user-{i}", event_id=f"evt-{i}")
                              for i in (1, 2, 3)])
        done = run.completed
        assert (done["records"], done["archived_records"], done["archive_objects"]) == (3, 3, 1)
        assert run.response == {"batchItemFailures": []}

    def test_skip_non_audit_records(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestArchiveAuditEvents::test_skip_non_audit_records."""
        run = archive.handle([
            removal(entity_id="user-1", event_id="evt-1"),
            record("MODIFY", new={"PK": {"S": "default/ENTITY#user-1"}}),
            record("REMOVE", old={"PK": {"S": "default/ENTITY#user-2"}}),
        ])
        done = run.completed
        assert (done["records"], done["archived_records"], done["archive_objects"]) == (3, 1, 1)
        assert [line["event_id"] for line in run.lines()] == ["evt-1"]

    def test_no_events_to_archive(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestArchiveAuditEvents::test_no_events_to_archive."""
        run = archive.handle([record("MODIFY", new={"PK": {"S": "default/ENTITY#user-1"}})])
        done = run.completed
        assert (done["records"], done["archived_records"], done["archive_objects"]) == (1, 0, 0)
        assert run.objects == {}
        assert run.response == {"batchItemFailures": []}

    def test_empty_records_list(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestArchiveAuditEvents::test_empty_records_list."""
        run = archive.handle([])
        assert run.completed["message"] == "empty batch"
        assert run.objects == {}
        assert run.response == {"batchItemFailures": []}

    def test_s3_write_failure(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestArchiveAuditEvents::test_s3_write_failure.

        Deviation: upstream records the error and returns success, so Lambda moves on
        and the events are gone; ours reports the record in ``batchItemFailures``, so
        Lambda retries it (then the mapping's DLQ keeps it) and no audit event is lost.
        """
        failing = removal()
        run = archive.handle([failing], bucket="no-such-bucket")
        assert run.response == {"batchItemFailures": [
            {"itemIdentifier": failing["dynamodb"]["SequenceNumber"]}]}
        assert (run.completed["archived_records"], run.completed["failed_writes"]) == (0, 1)

    def test_extraction_failure_continues(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestArchiveAuditEvents::test_extraction_failure_continues."""  # noqa: E501
        run = archive.handle([
            removal(entity_id="user-1", event_id="evt-1"),
            {"eventName": "REMOVE", "dynamodb": "invalid"},
            removal(entity_id="user-2", event_id="evt-2"),
        ])
        done = run.completed
        assert (done["records"], done["archived_records"], done["archive_objects"],
                done["skipped_malformed"]) == (3, 2, 1, 1)
        assert run.response == {"batchItemFailures": []}

    def test_s3_object_content(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestArchiveAuditEvents::test_s3_object_content.

        Our line carries upstream's fields and also ``namespace``, ``removal``,
        ``removed_at``, ``sequence_number`` and ``stream_event_id`` (README "Archive").
        """
        line = archive.handle([removal(entity_id="user-1", event_id="evt-1",
                                       action="entity_created",
                                       timestamp="2024-01-15T14:30:00Z")]).line()
        assert line["event_id"] == "evt-1"
        assert line["entity_id"] == "user-1"
        assert line["action"] == "entity_created"
        assert (line["namespace"], line["removal"]) == ("default", "manual")
        assert line["removed_at"] == datetime.fromtimestamp(REMOVED_AT, UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")

    def test_s3_object_key_uses_partition(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestArchiveAuditEvents::test_s3_object_key_uses_partition."""  # noqa: E501
        (key,) = archive.handle([removal(timestamp="2024-03-20T10:00:00Z")]).objects
        assert "year=2024" in key
        assert "month=03" in key
        assert "day=20" in key

    def test_s3_content_type_and_encoding(self, archive: Archive) -> None:
        """Upstream: unit/test_archiver.py::TestArchiveAuditEvents::test_s3_content_type_and_encoding."""  # noqa: E501
        (key,) = archive.handle([removal()]).objects
        head = archive.aws.s3.head_object(Bucket=archive.bucket, Key=key)
        assert head["ContentType"] == "application/x-ndjson"
        assert head["ContentEncoding"] == "gzip"
