"""The real handler against moto's server: S3 objects, their events on SQS, the bundles.

Each test receives from a moto SQS queue, hands the messages to the handler as Lambda's
SQS event, deletes what the partial batch response did not name, and reads the bundles
back from the distribution bucket.
"""

from __future__ import annotations

import io
import itertools
import json
import random
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local_aws.bundles_harness import (
    TEST_EVENT_BODY,
    Uploaded,
    bundles,
    compare,
    create_claim_table,
    s3_event_body,
    upload_workload,
)
from local_aws.event_source_mapping import delete_succeeded, receive_lambda_event, sqs_record
from local_aws.faults import FaultPlan, FaultyClient, SimulatedCrash
from local_aws.server import MotoServer, client
from streamagg_bundles.config import BundlerConfig
from streamagg_bundles.handler import Runtime, build_runtime, handle
from streamagg_bundles.processor import key_scheme, plan_bundles
from streamagg_bundles.s3_events import parse_message

_ids = itertools.count(1)
NOW_MS = 1_775_000_000_000
LEASE_MS = 960_000


@dataclass
class World:
    s3: Any
    ddb: Any
    sqs: Any
    config: BundlerConfig
    sources: tuple[str, str]
    queue_url: str
    queue_arn: str

    def runtime(self, *, ddb: Any = None, s3: Any = None) -> Runtime:
        return build_runtime(self.config.to_env(), dynamodb=ddb or self.ddb, s3=s3 or self.s3)

    def upload(self, count: int, **kwargs: Any) -> list[Uploaded]:
        return upload_workload(self.s3, seed=next(_ids), count=count, buckets=self.sources,
                               **kwargs)

    def invoke(self, records: Sequence[dict[str, Any]], *, now_ms: int = NOW_MS,
               owner: str = "request-1", ddb: Any = None, s3: Any = None) -> set[str]:
        """One invocation; the ids of the messages it reported failed."""
        response = handle({"Records": list(records)}, self.runtime(ddb=ddb, s3=s3),
                          now_ms=now_ms, owner=owner)
        return {item["itemIdentifier"] for item in response["batchItemFailures"]}

    def bundle_versions(self) -> dict[str, int]:
        return {key: len(versions) for key, versions, _ in
                bundles(self.s3, self.config.distribution_bucket_name)}


@pytest.fixture
def world(moto: MotoServer) -> World:
    url = moto.endpoint_url
    s3, ddb, sqs = client("s3", url), client("dynamodb", url), client("sqs", url)
    n = next(_ids)
    sources = (f"bundles-versioned-{n}", f"bundles-plain-{n}")
    distribution = f"bundles-distribution-{n}"
    for bucket in (*sources, distribution):
        s3.create_bucket(Bucket=bucket)
    for bucket in (sources[0], distribution):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    table = f"bundle-claims-{n}"
    create_claim_table(ddb, table)
    queue_url = sqs.create_queue(QueueName=f"ingest-{n}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    config = BundlerConfig(distribution_bucket_name=distribution, idempotency_table_name=table,
                           bundle_prefix="bundles/", max_bundle_input_mb=1,
                           max_bundle_objects=5)
    return World(s3, ddb, sqs, config, sources, queue_url, queue_arn)


def drain(world: World) -> list[dict[str, Any]]:
    """Receive, invoke, delete the succeeded messages, until the queue is empty."""
    responses: list[dict[str, Any]] = []
    runtime = world.runtime()
    while True:
        event = receive_lambda_event(world.sqs, world.queue_url, world.queue_arn)
        if not event["Records"]:
            return responses
        response = handle(event, runtime, now_ms=NOW_MS, owner=f"request-{next(_ids)}")
        responses.append(response)
        delete_succeeded(world.sqs, world.queue_url, event, response)


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The handler's JSON log lines and its EMF line, as printed."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def record(obj: Uploaded, message_id: str | None = None) -> dict[str, Any]:
    return sqs_record(message_id or f"m-{next(_ids)}", s3_event_body([obj]))


def test_messages_from_sqs_become_bundles_holding_each_object_once(world: World) -> None:
    objects = world.upload(14)
    for obj in objects:
        world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=s3_event_body([obj]))
    for obj in objects[:4]:  # S3 announces some objects twice
        world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=s3_event_body([obj]))
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=TEST_EVENT_BODY)
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody="{malformed")

    responses = drain(world)

    assert all(r == {"batchItemFailures": []} for r in responses)
    assert world.sqs.get_queue_attributes(
        QueueUrl=world.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert not compare(objects, world.s3, world.config.distribution_bucket_name)
    for key, versions, manifest in bundles(world.s3, world.config.distribution_bucket_name):
        assert key.startswith("bundles/2026/")
        assert key.endswith(".tar.gz")
        assert len(versions) == 1
        assert len(manifest["objects"]) <= 5
        body = world.s3.get_object(Bucket=world.config.distribution_bucket_name, Key=key)
        assert body["ContentType"] == "application/gzip"
        assert body["Metadata"]["objects"] == str(len(manifest["objects"]))


def test_bundle_contents_are_the_source_bytes(world: World) -> None:
    (obj,) = world.upload(1)
    source = world.s3.get_object(Bucket=obj.bucket, Key=obj.key)["Body"].read()
    assert world.invoke([record(obj)]) == set()
    ((key, _, manifest),) = bundles(world.s3, world.config.distribution_bucket_name)
    raw = world.s3.get_object(Bucket=world.config.distribution_bucket_name, Key=key)
    with tarfile.open(fileobj=io.BytesIO(raw["Body"].read()), mode="r:gz") as tar:
        member = tar.extractfile(manifest["objects"][0]["member"])
        assert member is not None
        assert member.read() == source
    assert manifest["objects"][0]["key"] == obj.key


def test_a_later_duplicate_delivery_writes_no_second_bundle(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    objects = world.upload(3)
    assert world.invoke([record(o) for o in objects]) == set()
    before = world.bundle_versions()
    capsys.readouterr()

    assert world.invoke([record(o) for o in reversed(objects)], owner="request-2") == set()

    assert world.bundle_versions() == before
    emf = log_lines(capsys)[-1]
    assert (emf["DuplicateObjects"], emf["BundlesWritten"]) == (3, 0)


def test_a_crash_between_claim_and_put_is_finished_by_a_later_delivery(world: World) -> None:
    objects = world.upload(3)
    records = [record(o) for o in objects]
    crashing_s3 = FaultyClient(world.s3, FaultPlan(random.Random(1)), crash_after=0)
    with pytest.raises(SimulatedCrash):
        world.invoke(records, s3=crashing_s3)
    assert world.bundle_versions() == {}

    # Redelivered while the crashed invocation's lease still runs: retried later.
    assert world.invoke(records, owner="request-2", now_ms=NOW_MS + 1000) == \
        {r["messageId"] for r in records}
    assert world.bundle_versions() == {}

    # Only one object comes back after the lease: the whole claimed bundle is written.
    assert world.invoke(records[:1], owner="request-3", now_ms=NOW_MS + LEASE_MS + 1) == set()
    assert list(world.bundle_versions().values()) == [1]
    assert not compare(objects, world.s3, world.config.distribution_bucket_name)
    assert world.invoke(records[1:], owner="request-4", now_ms=NOW_MS + LEASE_MS + 2) == set()
    assert list(world.bundle_versions().values()) == [1]


def test_a_crash_after_the_put_never_writes_the_bundle_again(world: World) -> None:
    objects = world.upload(2)
    records = [record(o) for o in objects]
    crashing_ddb = FaultyClient(world.ddb, FaultPlan(random.Random(1)), crash_after=1)
    with pytest.raises(SimulatedCrash):
        world.invoke(records, ddb=crashing_ddb)  # the bundle is PUT, not marked done
    assert list(world.bundle_versions().values()) == [1]

    later = NOW_MS + LEASE_MS + 1
    assert world.invoke(records, owner="request-2", now_ms=later) == set()
    assert list(world.bundle_versions().values()) == [1]
    assert not compare(objects, world.s3, world.config.distribution_bucket_name)


def test_a_lost_claim_response_is_recognised_as_the_invocations_own(world: World) -> None:
    objects = world.upload(2)
    plan = FaultPlan(random.Random(0), lost_response_rate=1.0)
    failed = world.invoke([record(o) for o in objects], ddb=FaultyClient(world.ddb, plan))
    if failed:  # the lost response surfaced as an error: a retry after the lease finishes
        assert world.invoke([record(o) for o in objects], owner="request-2",
                            now_ms=NOW_MS + LEASE_MS + 1) == set()
    assert plan.counts["lost_response"] >= 1
    assert list(world.bundle_versions().values()) == [1]
    assert not compare(objects, world.s3, world.config.distribution_bucket_name)


def test_an_oversized_object_fails_only_its_own_message(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    small = world.upload(2)
    (big,) = world.upload(1, max_size=0)
    big = replace(big, size=2 * 1024 * 1024)  # over MAX_BUNDLE_INPUT_MB=1
    records = [record(o) for o in small] + [record(big, "m-big")]
    assert world.invoke(records) == {"m-big"}
    (error,) = [line for line in log_lines(capsys) if line.get("level") == "ERROR"]
    assert "MAX_BUNDLE_INPUT_MB" in error["message"]
    assert (error["event_id"], error["key"]) == ("m-big", big.key)
    assert not compare(small, world.s3, world.config.distribution_bucket_name)


def test_an_object_overwritten_before_it_was_read_is_listed_missing(world: World) -> None:
    plain = world.sources[1]
    (obj,) = upload_workload(world.s3, seed=99, count=1, buckets=(plain,))
    world.s3.put_object(Bucket=plain, Key=obj.key, Body=b"newer content")
    assert world.invoke([record(obj)]) == set()
    ((_, _, manifest),) = bundles(world.s3, world.config.distribution_bucket_name)
    assert manifest["objects"] == []
    assert [m["key"] for m in manifest["missing"]] == [obj.key]


def test_malformed_messages_are_logged_with_their_id_and_acknowledged(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    (obj,) = world.upload(1)
    records = [sqs_record("m-bad", "{nope"), sqs_record("m-test", TEST_EVENT_BODY),
               record(obj, "m-good")]
    assert world.invoke(records) == set()
    lines = log_lines(capsys)
    (warning,) = [line for line in lines if line.get("level") == "WARNING"]
    assert warning["event_id"] == "m-bad"
    assert "body is not JSON" in warning["reason"]
    emf = lines[-1]
    assert (emf["MessagesSkipped"], emf["TestEvents"], emf["ObjectsBundled"]) == (1, 1, 1)


class ThrottledPut:
    """An S3 client whose PUT of one key fails as after the SDK's retries (SlowDown)."""

    def __init__(self, inner: Any, key: str) -> None:
        self._inner = inner
        self._key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def put_object(self, **kwargs: Any) -> Any:
        if kwargs["Key"] == self._key:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "injected"}},
                              "PutObject")
        return self._inner.put_object(**kwargs)


def test_a_failed_put_reports_exactly_the_messages_it_carried(world: World) -> None:
    objects = world.upload(6)  # max_bundle_objects=5: two bundles
    records = [record(o) for o in objects]
    sources = [parse_message(r).objects[0] for r in records]
    first, second = plan_bundles(sources, keys=key_scheme(world.config, NOW_MS),
                                 max_input_bytes=world.config.max_input_bytes,
                                 max_objects=world.config.max_bundle_objects)
    by_identity = {s.identity: r["messageId"] for s, r in zip(sources, records, strict=True)}

    failed = world.invoke(records, s3=ThrottledPut(world.s3, first.key))

    assert failed == {by_identity[m.identity] for m in first.members}
    assert list(world.bundle_versions()) == [second.key]
    retry = [r for r in records if r["messageId"] in failed]
    assert world.invoke(retry, owner="request-2", now_ms=NOW_MS + LEASE_MS + 1) == set()
    assert not compare(objects, world.s3, world.config.distribution_bucket_name)
    assert set(world.bundle_versions().values()) == {1}


def test_the_lambda_entry_point_reads_its_environment_once(
        world: World, moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamagg_bundles import handler as entry  # noqa: PLC0415

    for name, value in world.config.to_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
    monkeypatch.setattr(entry.handler, "runtime", None)
    objects = world.upload(2)

    class Context:
        aws_request_id = "c0ffee00-0000-4000-8000-000000000001"

    first = entry.handler({"Records": [record(objects[0])]}, Context())
    runtime = entry.handler.runtime
    second = entry.handler({"Records": [record(objects[1])]}, Context())

    assert first == second == {"batchItemFailures": []}
    assert entry.handler.runtime is runtime
    assert not compare(objects, world.s3, world.config.distribution_bucket_name)
