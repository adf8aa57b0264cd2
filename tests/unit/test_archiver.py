import gzip
import json

import pytest

from aggregator.archiver import build_objects, extract_line, is_archivable
from aggregator.config import AggregatorConfig
from streamagg_engine.errors import MalformedRecordError
from streamagg_engine.jsonl import encode_jsonl
from streamagg_engine.records import parse_record
from tests.factories import NS, audit_image, audit_removal, bucket_record, stream_record

CONFIG = AggregatorConfig()


def test_only_removals_of_namespaced_audit_items_are_archived() -> None:
    removal = parse_record(audit_removal())
    assert is_archivable(removal, CONFIG)
    image = audit_image()
    insert = parse_record(stream_record("INSERT", keys={"PK": image["PK"]}, new=image))
    assert not is_archivable(insert, CONFIG)
    bucket = parse_record(bucket_record("MODIFY", {"a": 0}, {"a": 1}))
    assert not is_archivable(bucket, CONFIG)


def test_a_line_carries_the_audit_fields_and_how_the_item_was_removed() -> None:
    line = extract_line(parse_record(audit_removal(sequence="777"))).line
    assert line == {
        "namespace": NS, "event_id": "01JAUDIT000000000000000001", "entity_id": "user-1",
        "action": "limits_set", "timestamp": "2023-11-14T22:13:20Z",
        "principal": "arn:aws:sts::123456789012:user/ops", "resource": "gpt-4",
        "details": {"limits": [{"name": "rpm", "capacity": 100, "burst": None, "soft": False}]},
        "removal": "ttl", "removed_at": "2023-11-14T22:13:20Z", "sequence_number": "777",
        "stream_event_id": "evt-777",
    }


def test_a_manual_delete_is_told_apart_from_a_ttl_expiry() -> None:
    assert extract_line(parse_record(audit_removal(ttl=False))).line["removal"] == "manual"


def test_an_audit_record_without_action_is_malformed() -> None:
    with pytest.raises(MalformedRecordError, match="no action"):
        extract_line(parse_record(audit_removal(audit_image(action=None))))


def test_jsonl_is_compact_and_gzip_bytes_are_deterministic() -> None:
    body = encode_jsonl([{"a": 1, "b": [1, 2]}, {"c": "é"}])
    assert gzip.decompress(body).decode() == '{"a":1,"b":[1,2]}\n{"c":"é"}\n'
    assert body == encode_jsonl([{"a": 1, "b": [1, 2]}, {"c": "é"}])


def test_objects_are_partitioned_by_each_events_own_day_with_record_derived_keys() -> None:
    lines = [
        extract_line(parse_record(audit_removal(
            audit_image(event_id=f"E{i}", timestamp=ts), sequence=str(500 + i))))
        for i, ts in enumerate(["2024-03-31T23:59:59Z", "2024-04-01T00:00:00Z",
                                "2024-03-31T10:00:00Z"])
    ]
    objects = build_objects(lines, "audit/")
    assert [o.key for o in objects] == [
        "audit/year=2024/month=03/day=31/audit-20231114T221320Z-500-502.jsonl.gz",
        "audit/year=2024/month=04/day=01/audit-20231114T221320Z-501-501.jsonl.gz",
    ]
    first_day = [json.loads(x) for x in gzip.decompress(objects[0].body).splitlines()]
    assert [x["event_id"] for x in first_day] == ["E0", "E2"]
    assert ":" not in objects[0].key
    assert "+" not in objects[0].key


def test_an_unreadable_event_timestamp_falls_back_to_the_removal_time_not_the_clock() -> None:
    line = extract_line(parse_record(audit_removal(audit_image(timestamp="soon"))))
    assert line.day == (2023, 11, 14)
