"""zae-limiter 0.17.0's ``tests/e2e/test_audit_archival.py``, ported to our handler on moto.

Upstream deploys its CloudFormation stack on LocalStack, creates an entity with its
client, expires the audit item and polls S3 for the archive (skipping the test when the
Lambda is slow). Here zae-limiter's own client writes a table as zae-limiter creates it
in moto's server, the audit items are removed the way TTL removes them (moto never
expires items, so the local event source mapping marks those removals with the TTL
service's identity), and the table's real stream is read by the local event source
mapping, which invokes our Lambda entry point ``aggregator.handler.handler`` with its
settings in the environment. No polling, no skip: the stream is drained before asserting.

Counts: 2 upstream tests; 2 ported, 2 passing, 1 asserting a deviation on purpose:
``test_archival_disabled_no_s3_bucket`` checks upstream's stack outputs; the stack side
of ours is ``tests/infra/test_stack.py::test_context_values_reach_the_function_environment``
(no bucket, no ``ArchiveBucketName`` output), so the port checks the function's side: with
archival off, audit removals are ignored, no archive store exists, snapshots still flow.
"""

from __future__ import annotations

import gzip
import json
import time

import pytest
from zae_limiter import Limit

from aggregator import handler as handler_module
from aggregator.config import AggregatorConfig
from local_aws.event_source_mapping import LocalEventSourceMapping, MappingReport, MappingSettings
from local_aws.server import FAKE_REGION
from local_aws.traffic import TtlEmulator, zae_limiter
from streamagg_engine.windows import Window
from tests.moto_fixtures import LocalAws
from tests.zae_upstream import support

moto, aws = support.moto, support.aws


def expire_audit_items(aws: LocalAws, table: str, pk: str, ttl: TtlEmulator) -> int:
    """Upstream's steps 3 and 4: the entity's audit items get a past ``ttl`` and are
    removed as DynamoDB's TTL service removes them; how many there were."""
    items = aws.ddb.query(TableName=table, KeyConditionExpression="PK = :pk",
                          ExpressionAttributeValues={":pk": {"S": pk}})["Items"]
    for item in items:
        key = {"PK": item["PK"], "SK": item["SK"]}
        aws.ddb.update_item(TableName=table, Key=key, UpdateExpression="SET #ttl = :ttl",
                            ExpressionAttributeNames={"#ttl": "ttl"},
                            ExpressionAttributeValues={":ttl": {"N": str(int(time.time()) - 1)}})
        ttl.expired.add((item["PK"]["S"], item["SK"]["S"]))
        aws.ddb.delete_item(TableName=table, Key=key)
    return len(items)


def drain(aws: LocalAws, stream: str, config: AggregatorConfig, ttl: TtlEmulator,
          monkeypatch: pytest.MonkeyPatch) -> MappingReport:
    """The table's stream, batch by batch, into our Lambda entry point."""
    for name, value in {**config.to_env(), "AWS_ENDPOINT_URL": aws.endpoint_url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handler_module.handler, "runtime", None)
    mapping = LocalEventSourceMapping(
        aws.streams, stream, lambda event: handler_module.handler(event, None),
        settings=MappingSettings(batch_size=10), on_failure=aws.dlq_messages.append,
        clock=time.time, ttl_deleted_keys=ttl.is_ttl_delete)
    return mapping.drain()


class TestAuditArchival:
    def test_audit_events_archived_to_s3(self, aws: LocalAws,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
        """Upstream: e2e/test_audit_archival.py::TestAuditArchival::test_audit_events_archived_to_s3.

        Beyond upstream's checks (gzip JSON Lines, each line an audit event), every event
        the client wrote is archived exactly once and says TTL removed it.
        """  # noqa: E501
        table, stream = aws.create_zae_table()
        limiter = zae_limiter(aws.endpoint_url, table, FAKE_REGION)
        entity = limiter.create_entity("archive-test-user", name="Archive Test User")
        assert entity.id == "archive-test-user"
        ns = limiter._repository.namespace_id
        ttl = TtlEmulator()
        expired = expire_audit_items(aws, table, f"{ns}/AUDIT#{entity.id}", ttl)
        assert expired > 0, "No audit records found"
        bucket = aws.create_bucket()
        config = AggregatorConfig(table_name=table, archive_bucket_name=bucket,
                                  snapshot_windows=(Window.HOURLY,), snapshot_ttl_days=7)

        report = drain(aws, stream, config, ttl, monkeypatch)

        assert report.records_sent_to_dlq == 0
        objects = aws.objects(bucket)
        assert objects, "No archive objects found in S3"
        events = []
        for key, body in objects.items():
            assert key.startswith("audit/year=")
            lines = gzip.decompress(body).decode("utf-8").strip().split("\n")
            assert len(lines) > 0, "JSONL file is empty"
            events += [json.loads(line) for line in lines]
        assert all("action" in event and "timestamp" in event for event in events)
        assert len({event["event_id"] for event in events}) == len(events) == expired
        assert {(event["entity_id"], event["removal"]) for event in events} == {
            ("archive-test-user", "ttl")}

    def test_archival_disabled_no_s3_bucket(self, aws: LocalAws,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        """Upstream: e2e/test_audit_archival.py::TestAuditArchival::test_archival_disabled_no_s3_bucket.

        Deviation: upstream asserts its stack has no ``AuditArchiveBucketName`` output;
        ours is asserted at synth (module doc). Here: the function with archival off
        archives nothing, needs no bucket, and still writes the usage snapshots.
        """  # noqa: E501
        table, stream = aws.create_zae_table()
        limiter = zae_limiter(aws.endpoint_url, table, FAKE_REGION)
        limiter.create_entity("no-archive-user", name="No Archive User")
        ns = limiter._repository.namespace_id
        ttl = TtlEmulator()
        assert expire_audit_items(aws, table, f"{ns}/AUDIT#no-archive-user", ttl) > 0
        limiter.set_limits("no-archive-user", [Limit.per_minute("rpm", 100)], resource="gpt-4")
        with limiter.acquire("no-archive-user", "gpt-4", consume={"rpm": 3}):
            pass
        buckets_before = aws.s3.list_buckets()["Buckets"]
        config = AggregatorConfig(table_name=table, enable_archival=False,
                                  snapshot_windows=(Window.HOURLY,))

        report = drain(aws, stream, config, ttl, monkeypatch)

        assert report.records_sent_to_dlq == 0
        runtime = handler_module.handler.runtime
        assert runtime is not None
        assert runtime.stores.archive is None
        assert aws.s3.list_buckets()["Buckets"] == buckets_before
        snapshots, _ = limiter.get_usage_snapshots(entity_id="no-archive-user", resource="gpt-4",
                                                   window_type="hourly", limit=10)
        assert [snapshot.counters for snapshot in snapshots] == [{"rpm": 3}]
