"""The ``seed-001`` profile: seed 001's bundle format and key, against its own deployment.

The template carries the document's settings; then the real handler drains an SQS queue of
S3 object-created events into a distribution bucket and an idempotency table named as the
document's examples, configured only through the document's variables, and the bundles are
read back the way the document's consumer reads them: one gzip whose content is the
source files' bytes, under ``YYYY/MM/DD/HH/bundle-<id>.gz`` of the hour it was written.
"""

from __future__ import annotations

import gzip
import itertools
import random
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Match, Template

from infra.bundles import HANDLER, ObjectBundler
from local_aws.bundles_harness import (
    Uploaded,
    bundle_versions,
    compare,
    create_buckets,
    create_claim_table,
    s3_event_body,
    upload_workload,
)
from local_aws.event_source_mapping import delete_succeeded, receive_lambda_event, sqs_record
from local_aws.faults import FaultPlan, FaultyClient, SimulatedCrash
from local_aws.server import MotoServer, client
from streamagg_bundles.config import BundlerConfig
from streamagg_bundles.handler import build_runtime, handle
from streamagg_bundles.stores import ClaimTable
from streamagg_engine.errors import ConfigError

DISTRIBUTION = "data-aggregator-prod-distribution-bucket"
TABLE = "data-aggregator-prod-idempotency-table"
SERVICE = "data-aggregator"
DOCUMENT_ENV = {
    "DISTRIBUTION_BUCKET_NAME": DISTRIBUTION, "MAX_BUNDLE_INPUT_MB": "1",
    "SERVICE_NAME": SERVICE, "IDEMPOTENCY_TABLE_NAME": TABLE, "IDEMPOTENCY_TTL_DAYS": "7",
    "LOG_LEVEL": "INFO", "PROFILE": "seed-001",
}
"""The document's environment table (its example values), plus the profile."""
HOUR_MS = 3_600_000
NOW_MS = int(datetime(2026, 7, 19, 9, 59, 30, tzinfo=UTC).timestamp() * 1000)
"""Write time: 09:59:30 on the document's example day (events are from 2026-03-31)."""
SEED_KEY = re.compile(r"(\d{4}/\d{2}/\d{2}/\d{2})/bundle-[0-9a-f]{32}\.gz")
_ids = itertools.count(1)


@pytest.mark.synth
def test_the_construct_sets_the_documents_variables_and_format() -> None:
    stack = Stack(App(), "SeedBundles")
    bundler = ObjectBundler(stack, "Bundler", profile="seed-001", service_name=SERVICE)
    template = Template.from_stack(stack)

    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": HANDLER,
        "Description": "Bundles S3 objects announced on SQS into plain gzip bundles, once each",
        "Environment": {"Variables": Match.object_like({
            "PROFILE": "seed-001", "BUNDLE_FORMAT": "gzip", "PARTITION_BY": "write-time",
            "SERVICE_NAME": SERVICE, "BUNDLE_PREFIX": "", "MAX_BUNDLE_INPUT_MB": "100",
            "DISTRIBUTION_BUCKET_NAME": {"Ref": Match.string_like_regexp("DistributionBucket")},
            "IDEMPOTENCY_TABLE_NAME": {"Ref": Match.string_like_regexp("IdempotencyTable")},
        })},
    })
    assert (bundler.config.bundle_format, bundler.config.partition_by) == ("gzip", "write-time")


@pytest.mark.synth
@pytest.mark.parametrize(("props", "message"), [
    ({"bundle_format": "tar"}, r"bundle_format \(BUNDLE_FORMAT\): 'tar' conflicts with "
     r"profile seed-001 \(PROFILE\)"),
    ({"partition_by": "event-time"}, r"partition_by \(PARTITION_BY\): 'event-time' conflicts"),
])
def test_synth_refuses_a_setting_the_profile_contradicts(props: dict[str, Any],
                                                         message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ObjectBundler(Stack(App(), "Conflict"), "Bundler", profile="seed-001", **props)


class SeedWorld:
    """Seed 001's deployment on moto: ingest buckets, the S3-event queue, the distribution
    bucket and the idempotency table, and the handler configured by the document's names."""

    def __init__(self, moto: MotoServer) -> None:
        url = moto.endpoint_url
        self.s3, self.ddb, self.sqs = client("s3", url), client("dynamodb", url), \
            client("sqs", url)
        n = next(_ids)
        self.sources = (f"seed1-versioned-{n}", f"seed1-plain-{n}")
        self.distribution = f"{DISTRIBUTION}-{n}"
        self.table = f"{TABLE}-{n}"
        create_buckets(self.s3, distribution=self.distribution, sources=self.sources)
        create_claim_table(self.ddb, self.table)
        self.queue_url = self.sqs.create_queue(QueueName=f"data-aggregator-{n}")["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.env = {**DOCUMENT_ENV, "DISTRIBUTION_BUCKET_NAME": self.distribution,
                    "IDEMPOTENCY_TABLE_NAME": self.table}
        self.config = BundlerConfig.from_env(self.env)

    def upload(self, count: int) -> list[Uploaded]:
        return upload_workload(self.s3, seed=next(_ids), count=count, buckets=self.sources,
                               max_size=300 * 1024)

    def invoke(self, records: list[dict[str, Any]], *, now_ms: int, owner: str,
               s3: Any = None) -> dict[str, Any]:
        runtime = build_runtime(self.env, dynamodb=self.ddb, s3=s3 or self.s3)
        return handle({"Records": records}, runtime, now_ms=now_ms, owner=owner)

    def drain(self, now_ms: int) -> None:
        while True:
            event = receive_lambda_event(self.sqs, self.queue_url, self.queue_arn)
            if not event["Records"]:
                return
            response = self.invoke(event["Records"], now_ms=now_ms, owner=f"r-{next(_ids)}")
            delete_succeeded(self.sqs, self.queue_url, event, response)

    def claims(self) -> ClaimTable:
        return ClaimTable(self.ddb, self.table, self.config.idempotency_ttl_days)

    def source_bytes(self, obj: Uploaded) -> bytes:
        where = {"VersionId": obj.version_id} if obj.version_id else {}
        body: bytes = self.s3.get_object(Bucket=obj.bucket, Key=obj.key, **where)["Body"].read()
        return body


@pytest.fixture
def seed(moto: MotoServer) -> SeedWorld:
    return SeedWorld(moto)


def test_the_document_variables_configure_the_seed_format(seed: SeedWorld) -> None:
    config = seed.config
    assert (config.profile, config.bundle_format, config.partition_by) == \
        ("seed-001", "gzip", "write-time")
    assert (config.max_bundle_input_mb, config.idempotency_ttl_days, config.service_name) == \
        (1, 7, SERVICE)


def test_each_bundle_is_one_gzip_of_its_files_bytes_under_the_write_hour(
        seed: SeedWorld) -> None:
    objects = seed.upload(12)
    for obj in objects:
        seed.sqs.send_message(QueueUrl=seed.queue_url, MessageBody=s3_event_body([obj]))
    for obj in objects[:3]:  # S3 announces some objects twice
        seed.sqs.send_message(QueueUrl=seed.queue_url, MessageBody=s3_event_body([obj]))

    seed.drain(NOW_MS)

    keys = bundle_versions(seed.s3, seed.distribution)
    assert len(keys) >= 2  # 12 objects of up to 300 KiB, 1 MiB per bundle
    bundled: list[Uploaded] = []
    by_identity = {obj.identity: obj for obj in objects}
    for key, versions in keys.items():
        match = SEED_KEY.fullmatch(key)
        assert match, key
        assert match.group(1) == "2026/07/19/09"
        assert len(versions) == 1
        stored = seed.s3.get_object(Bucket=seed.distribution, Key=key)
        assert stored["ContentType"] == "application/gzip"
        assert stored["Metadata"]["service"] == SERVICE
        record = seed.claims().get(key)
        assert record is not None
        members = [by_identity[m.identity] for m in record.members]
        content = gzip.decompress(stored["Body"].read())
        assert content == b"".join(seed.source_bytes(m) for m in members)
        assert stored["Metadata"]["objects"] == str(len(members))
        bundled += members
    assert sorted(o.identity for o in bundled) == sorted(by_identity)
    assert not compare(objects, seed.s3, seed.distribution, claims=seed.claims())


def test_a_retry_in_a_later_hour_finishes_the_bundle_under_its_first_hour(
        seed: SeedWorld) -> None:
    """Write-time partitioning keeps exactly once: the key is fixed by the first claim."""
    objects = seed.upload(3)
    records = [sqs_record(f"m-{i}", s3_event_body([o])) for i, o in enumerate(objects)]
    crashing = FaultyClient(seed.s3, FaultPlan(random.Random(1)), crash_after=0)
    with pytest.raises(SimulatedCrash):  # claimed at 09:59:30, crashed before the PUT
        seed.invoke(records, now_ms=NOW_MS, owner="first", s3=crashing)
    assert bundle_versions(seed.s3, seed.distribution) == {}

    later = NOW_MS + 2 * HOUR_MS  # 11:59:30: the lease is long over
    response = seed.invoke(records, now_ms=later, owner="second")
    assert response == {"batchItemFailures": []}
    again = seed.invoke(records, now_ms=later + HOUR_MS, owner="third")
    assert again == {"batchItemFailures": []}

    (key, versions), = bundle_versions(seed.s3, seed.distribution).items()
    match = SEED_KEY.fullmatch(key)
    assert match, key
    assert match.group(1) == "2026/07/19/09"
    assert len(versions) == 1
    assert not compare(objects, seed.s3, seed.distribution, claims=seed.claims())
