"""The batch pipeline with in-memory stores: failures, skips and what is reported."""

import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from aggregator.config import AggregatorConfig
from aggregator.maintenance import BucketRefillState, RefillOutcome
from aggregator.pipeline import Stores, process_batch
from aggregator.processor import SnapshotUpdate
from aggregator.stores import Applied
from streamagg_engine.errors import StoreError
from tests.factories import NS, audit_removal, bucket_record, n

CONFIG = AggregatorConfig(archive_bucket_name="archive")
NOW = 1_700_000_060_000


class FakeSnapshots:
    def __init__(self, failing_entity: str = "") -> None:
        self.applied: list[SnapshotUpdate] = []
        self.failing_entity = failing_entity

    def apply(self, update: SnapshotUpdate) -> Applied:
        if update.key.entity == self.failing_entity:
            raise StoreError("throttled", retryable=True, code="ThrottlingException")
        self.applied.append(update)
        return Applied()


class FakeArchive:
    def __init__(self, fail: bool = False) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail = fail

    def put(self, key: str, body: bytes, *, content_type: str, content_encoding: str) -> None:
        if self.fail:
            raise StoreError("s3 down", retryable=True, code="SlowDown")
        assert (content_type, content_encoding) == ("application/x-ndjson", "gzip")
        self.objects[key] = body


class FakeBuckets:
    """Records each maintenance call in order; ``outcome`` is the refill's answer (or raised)."""

    def __init__(self, outcome: RefillOutcome | Exception = "written", *,
                 propagate_fails: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.outcome = outcome
        self.propagate_fails = propagate_fails

    def refill(self, state: BucketRefillState, now_ms: int) -> RefillOutcome:
        self.calls.append(("refill", state.entity_id))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    def shard(self, state: BucketRefillState, now_ms: int) -> bool:
        self.calls.append(("shard", state.entity_id))
        return True

    def propagate(self, record: Any, now_ms: int) -> int:
        self.calls.append(("propagate", record["dynamodb"]["Keys"]["PK"]["S"]))
        if self.propagate_fails:
            raise StoreError("throttled", retryable=True, code="ThrottlingException")
        return 3


def run(records: list[dict[str, Any]], *, snapshots: Any = None, archive: Any = None,
        buckets: Any = None, config: AggregatorConfig = CONFIG) -> Any:
    stores = Stores(snapshots=snapshots or FakeSnapshots(), buckets=buckets,
                    archive=archive)
    with ThreadPoolExecutor(4) as pool:
        return process_batch(records, config=config, stores=stores, pool=pool, now_ms=NOW)


def test_a_malformed_record_is_logged_with_its_id_and_the_rest_is_processed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, sequence="200")
    bad["dynamodb"]["NewImage"]["b_rpm_tc"] = {"N": "lots"}
    good = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, entity="user-2", sequence="201")
    snapshots = FakeSnapshots()
    result = run([bad, good], snapshots=snapshots)
    assert result.skipped_malformed == 1
    assert {u.key.entity for u in snapshots.applied} == {"user-2"}
    assert result.response() == {"batchItemFailures": []}
    (entry,) = [r for r in caplog.records if r.getMessage() == "skipped malformed record"]
    assert entry.levelno == logging.WARNING
    assert entry.event_id == "evt-200"  # type: ignore[attr-defined]
    assert "not a whole DynamoDB number" in entry.reason  # type: ignore[attr-defined]


def test_a_failed_snapshot_write_reports_the_lowest_record_it_carried() -> None:
    records = [
        bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, entity="ok", sequence="300"),
        bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, entity="bad", sequence="301"),
        bucket_record("MODIFY", {"rpm": 1000}, {"rpm": 2000}, entity="bad", sequence="302"),
    ]
    result = run(records, snapshots=FakeSnapshots(failing_entity="bad"))
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": "301"}]}
    assert result.failed_writes == 2  # hourly and daily items of "bad"


def test_an_archive_failure_does_not_stop_snapshots_and_fails_only_its_records() -> None:
    records = [bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, sequence="400"),
               audit_removal(sequence="401")]
    snapshots = FakeSnapshots()
    result = run(records, snapshots=snapshots, archive=FakeArchive(fail=True))
    assert len(snapshots.applied) == 2
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": "401"}]}


def test_audit_removals_are_archived_and_counted() -> None:
    archive = FakeArchive()
    result = run([audit_removal(sequence="500"), audit_removal(sequence="501")],
                 archive=archive)
    assert result.archived_records == 2
    assert result.archive_objects == 1
    assert len(archive.objects) == 1


def test_refill_failures_are_counted_logged_with_the_pk_and_never_fail_the_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 10**6}, tk={"rpm": 0})
    buckets = FakeBuckets(StoreError("throttled", retryable=True, code="ThrottlingException"))
    result = run([record], buckets=buckets)
    assert buckets.calls == [("refill", "user-1")]
    assert result.refills_failed == 1
    assert result.response() == {"batchItemFailures": []}
    (entry,) = [r for r in caplog.records if r.getMessage().startswith("bucket refill failed")]
    assert entry.pk == f"{NS}/BUCKET#user-1#gpt-4#0"  # type: ignore[attr-defined]
    assert entry.error_code == "ThrottlingException"  # type: ignore[attr-defined]


def test_one_refill_per_bucket_per_batch() -> None:
    records = [bucket_record("MODIFY", {"rpm": i * 10**5}, {"rpm": (i + 1) * 10**5},
                             tk={"rpm": 0}, sequence=str(600 + i)) for i in range(5)]
    buckets = FakeBuckets()
    result = run(records, buckets=buckets)
    assert buckets.calls == [("refill", "user-1")]
    assert result.refills_written == 1


def test_lost_races_are_counted_apart_from_refills_written() -> None:
    record = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 10**6}, tk={"rpm": 0})
    result = run([record], buckets=FakeBuckets("lost_race"))
    assert (result.refills_written, result.refills_lost_race) == (0, 1)


def test_a_bucket_with_wcu_gets_the_sharding_backstop_after_its_refill_even_a_failed_one(
) -> None:
    wcu = {"b_wcu_tk": n(0), "b_wcu_cp": n(1_000_000), "b_wcu_ra": n(1_000_000),
           "b_wcu_rp": n(1000), "b_wcu_tc": n(0)}
    with_wcu = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, extra=wcu)
    without = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, entity="user-2")
    buckets = FakeBuckets(StoreError("throttled", retryable=True))
    result = run([with_wcu, without], buckets=buckets)
    assert sorted(buckets.calls) == [("refill", "user-1"), ("refill", "user-2"),
                                     ("shard", "user-1")]
    assert (result.refills_failed, result.shards_doubled) == (2, 1)


def test_only_records_that_raised_a_shard_count_are_propagated_and_failures_are_counted(
) -> None:
    grew = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, sequence="700")
    grew["dynamodb"]["NewImage"]["shard_count"] = n(4)
    grew["dynamodb"]["OldImage"]["shard_count"] = n(2)
    same = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, entity="user-2", sequence="701")
    result = run([grew, same], buckets=FakeBuckets())
    assert result.shards_propagated == 3
    buckets = FakeBuckets(propagate_fails=True)
    result = run([grew, same], buckets=buckets)
    assert [c for c in buckets.calls if c[0] == "propagate"] == [
        ("propagate", f"{NS}/BUCKET#user-1#gpt-4#0")]
    assert buckets.calls[-1][0] == "propagate"  # after every bucket's refill
    assert (result.refills_failed, result.response()) == (1, {"batchItemFailures": []})


@pytest.mark.parametrize(("maintained", "ignored"), [(True, 0), (False, 1)])
def test_a_bucket_update_that_moved_no_counter_is_maintained_or_ignored(
    maintained: bool, ignored: int,
) -> None:
    still = bucket_record("MODIFY", {"rpm": 1000}, {"rpm": 1000})
    result = run([still], buckets=FakeBuckets() if maintained else None,
                 config=AggregatorConfig(archive_bucket_name="archive",
                                         enable_refill=maintained))
    assert result.ignored == ignored


def test_records_of_other_items_are_ignored_not_skipped() -> None:
    other = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1})
    other["dynamodb"]["Keys"]["PK"] = {"S": "ns/ENTITY#user-1"}
    result = run([other])
    assert (result.ignored, result.skipped_malformed) == (1, 0)


class Crashing:
    def apply(self, update: SnapshotUpdate) -> Applied:
        raise RuntimeError("a bug, not a store error")


@pytest.mark.parametrize("enabled", [True, False])
def test_a_batch_leaves_the_garbage_collector_as_it_found_it(enabled: bool) -> None:
    # The collector is paused during a batch; a crash must not leave it off for good.
    record = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000})
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        run([record])
        assert gc.isenabled() is enabled
        with pytest.raises(RuntimeError, match="a bug"):
            run([record], snapshots=Crashing())
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
