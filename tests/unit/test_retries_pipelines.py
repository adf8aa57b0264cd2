"""Each pipeline's real handler under refused writes: a write refused beyond the SDK's
retries is tried again within the invocation and the batch finishes with no failure
reported, exactly once; an error a retry cannot fix fails its records at the first try.

The usage aggregator and the bundler run on moto's server, the event and projection
pipelines on the in-memory DynamoDB of :mod:`local_aws.memory`.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError

from aggregator import handler as usage
from aggregator.config import AggregatorConfig
from local_aws.bundles_harness import (
    bundles,
    compare,
    create_claim_table,
    s3_event_body,
    upload_workload,
)
from local_aws.event_source_mapping import sqs_record
from local_aws.projection_harness import DASHBOARD, memory_dashboard
from local_aws.server import MotoServer, client
from streamagg_bundles import handler as bundler
from streamagg_bundles.config import BundlerConfig
from streamagg_engine.windows import Window
from streamagg_events import handler as events
from streamagg_projection import handler as projection
from streamagg_projection.config import ProjectionConfig
from tests.events.support import NOW_MS, Memory, document
from tests.events.support import record as kinesis_record
from tests.factories import bucket_record
from tests.moto_fixtures import LocalAws
from tests.projection.support import image
from tests.projection.support import record as projection_record

THROTTLED = "ProvisionedThroughputExceededException"
DENIED = "AccessDeniedException"
_ids = itertools.count(1)


class Refusing:
    """A client whose ``operation`` is refused ``times`` times with ``code``, as after the
    SDK's own retries; ``lost`` lets the first call land and then lose its response.
    Every call is counted."""

    def __init__(self, inner: Any, operation: str, code: str = THROTTLED, *, times: int = 1,
                 lost: bool = False) -> None:
        self.inner, self.operation, self.code = inner, operation, code
        self.refusals, self.lost = times, lost
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.inner, name)

        def counted(**kwargs: Any) -> Any:
            self.calls[name] += 1
            if name == self.operation and self.refusals > 0:
                self.refusals -= 1
                if self.lost:
                    call(**kwargs)  # it landed; the caller never hears so
                raise ClientError({"Error": {"Code": self.code, "Message": "injected"}}, name)
            return call(**kwargs)
        return counted


def failures(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


# --- usage snapshots, on moto --------------------------------------------------------

def usage_batch(aws: LocalAws, ddb: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Two consumptions of one bucket through the real handler; the response, the items."""
    table, _ = aws.create_table()
    config = AggregatorConfig(table_name=table, snapshot_windows=(Window.HOURLY,),
                              enable_refill=False, enable_archival=False)
    records = [bucket_record("MODIFY", {"rpm": 0}, {"rpm": 2000}, sequence="101"),
               bucket_record("MODIFY", {"rpm": 2000}, {"rpm": 5000}, sequence="102")]
    runtime = usage.build_runtime(config.to_env(), dynamodb=ddb(table))
    response = usage.handle({"Records": records}, runtime, now_ms=NOW_MS)
    return response, aws.items(table)


def usage_counts(items: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(int(i["rpm"]["N"]), int(i["total_events"]["N"])) for i in items if "rpm" in i]


@pytest.mark.parametrize("lost", [False, True], ids=["refused", "response-lost"])
def test_usage_a_refused_snapshot_write_is_retried_and_counted_once(
        aws: LocalAws, lost: bool) -> None:
    refusing: list[Refusing] = []

    def ddb(_: str) -> Refusing:
        refusing.append(Refusing(aws.ddb, "update_item", "InternalServerError" if lost
                                 else THROTTLED, times=2, lost=lost))
        return refusing[0]

    response, items = usage_batch(aws, ddb)
    assert failures(response) == []
    assert usage_counts(items) == [(5, 2)]
    # A lost response's retry lands on its own earlier write: the condition stops it.
    assert refusing[0].calls["update_item"] == (2 if lost else 3)


def test_usage_a_write_a_retry_cannot_fix_fails_its_records_at_once(aws: LocalAws) -> None:
    refusing = Refusing(aws.ddb, "update_item", DENIED)
    response, items = usage_batch(aws, lambda _: refusing)
    assert failures(response) == ["101"]
    assert usage_counts(items) == []
    assert refusing.calls["update_item"] == 1


# --- event metrics, in memory --------------------------------------------------------

def events_batch(memory: Memory, ddb: Any) -> dict[str, Any]:
    runtime = events.build_runtime(memory.config.to_env(), dynamodb=ddb, s3=memory.s3)
    return events.handle({"Records": [kinesis_record(document(1), 9),
                                      kinesis_record(document(2), 10)]},
                         runtime, now_ms=NOW_MS)


@pytest.mark.parametrize("lost", [False, True], ids=["refused", "response-lost"])
def test_events_a_refused_counter_transaction_is_retried_and_counted_once(lost: bool) -> None:
    memory = Memory()
    refusing = Refusing(memory.ddb, "transact_write_items",
                        "InternalServerError" if lost else "ThrottlingException",
                        times=2, lost=lost)
    assert failures(events_batch(memory, refusing)) == []
    assert memory.counter("exp-1", "green", "daily", "2026-01-31T00:00:00Z")["events"] == 2
    # A lost response's retry lands on its own earlier markers: the condition stops it.
    assert refusing.calls["transact_write_items"] == (2 if lost else 3)


def test_events_a_transaction_a_retry_cannot_fix_fails_its_records_at_once() -> None:
    memory = Memory()
    refusing = Refusing(memory.ddb, "transact_write_items", DENIED)
    assert failures(events_batch(memory, refusing)) == ["9"]
    assert refusing.calls["transact_write_items"] == 1


# --- projection, in memory -----------------------------------------------------------

def projection_batch(refusing: Refusing) -> dict[str, Any]:
    runtime = projection.build_runtime(ProjectionConfig(dashboard_table_name=DASHBOARD).to_env(),
                                       dynamodb=refusing)
    first = image("a", tags=["AI"])
    return projection.handle({"Records": [
        projection_record(None, first, sequence=31),
        projection_record(first, image("a", tags=["AI", "europe"]), sequence=32),
        projection_record(None, image("b"), sequence=33)]}, runtime, now_ms=NOW_MS)


def test_projection_a_refused_batch_write_is_retried_and_the_dashboard_is_complete() -> None:
    dashboard = memory_dashboard()
    refusing = Refusing(dashboard, "batch_write_item", times=2)
    assert failures(projection_batch(refusing)) == []
    assert refusing.calls["batch_write_item"] == 3
    keys = sorted(i["sk"]["S"].rsplit("#", 1)[0].removesuffix("2025-11-16T14:30:15.000Z")
                  for i in dashboard.items(DASHBOARD))
    assert keys == ["", "", "TAG#AI#", "TAG#europe#"]


def test_projection_a_batch_write_a_retry_cannot_fix_fails_its_records_at_once() -> None:
    dashboard = memory_dashboard()
    refusing = Refusing(dashboard, "batch_write_item", DENIED)
    assert failures(projection_batch(refusing)) == ["31"]
    assert refusing.calls["batch_write_item"] == 1
    assert dashboard.items(DASHBOARD) == []


# --- bundles, on moto ----------------------------------------------------------------

@pytest.fixture
def bundle_world(moto: MotoServer) -> tuple[Any, Any, BundlerConfig, tuple[str, str]]:
    url = moto.endpoint_url
    s3, ddb = client("s3", url), client("dynamodb", url)
    n = next(_ids)
    sources = (f"retry-versioned-{n}", f"retry-plain-{n}")
    distribution = f"retry-distribution-{n}"
    for bucket in (*sources, distribution):
        s3.create_bucket(Bucket=bucket)
    for bucket in (sources[0], distribution):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    table = f"retry-claims-{n}"
    create_claim_table(ddb, table)
    config = BundlerConfig(distribution_bucket_name=distribution, idempotency_table_name=table,
                           bundle_prefix="bundles/", max_bundle_objects=5)
    return s3, ddb, config, sources


def test_bundles_a_refused_claim_and_put_are_retried_and_each_object_bundled_once(
        bundle_world: tuple[Any, Any, BundlerConfig, tuple[str, str]]) -> None:
    s3, ddb, config, sources = bundle_world
    objects = upload_workload(s3, seed=next(_ids), count=3, buckets=sources)
    claims = Refusing(ddb, "transact_write_items", lost=True)  # the claim landed
    puts = Refusing(s3, "put_object", "SlowDown")
    runtime = bundler.build_runtime(config.to_env(), dynamodb=claims, s3=puts)
    event = {"Records": [sqs_record(f"m-{i}", s3_event_body([obj]))
                         for i, obj in enumerate(objects)]}
    assert failures(bundler.handle(event, runtime, now_ms=NOW_MS, owner="request-1")) == []
    assert (claims.calls["transact_write_items"], puts.calls["put_object"]) == (2, 2)
    assert not compare(objects, s3, config.distribution_bucket_name)
    assert [len(versions) for _, versions, _ in bundles(s3, config.distribution_bucket_name)] \
        == [1]


def test_bundles_a_put_a_retry_cannot_fix_fails_its_messages_at_once(
        bundle_world: tuple[Any, Any, BundlerConfig, tuple[str, str]]) -> None:
    s3, ddb, config, sources = bundle_world
    (obj,) = upload_workload(s3, seed=next(_ids), count=1, buckets=sources)
    puts = Refusing(s3, "put_object", "AccessDenied")
    runtime = bundler.build_runtime(config.to_env(), dynamodb=ddb, s3=puts)
    event = {"Records": [sqs_record("m-only", s3_event_body([obj]))]}
    assert failures(bundler.handle(event, runtime, now_ms=NOW_MS, owner="request-1")) == [
        "m-only"]
    assert puts.calls["put_object"] == 1
