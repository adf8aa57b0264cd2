"""zae-limiter 0.17.0's ``tests/integration/test_bucket_refill.py``, ported to our
Lambda entry point on moto.

Upstream seeds a bucket item in LocalStack, builds the ``BucketRefillState`` its stream
records would aggregate to and calls ``try_refill_bucket`` on the real table. Here the
same item is seeded in a zae-limiter table in moto's server, the MODIFY record(s) whose
images carry that state go through our handler (``support.Zae.invoke_handler``, refill
on, a pinned ``now_ms``), and the item is read back. The seeded items keep upstream's
shape, which has no ``resource`` attribute: the resource comes from the key.

Counts: 12 upstream tests; 12 ported, 12 passing, none asserting a deviation. Where
upstream calls ``try_refill_bucket`` twice with one state (the optimistic lock, the
refused later image), the port delivers the same record twice, as Lambda does when it
retries a batch.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from zae_limiter import schema
from zae_limiter.schedule import ScheduleEntry, encode
from zae_limiter.schema import BUCKET_SCHED_NONE

from aggregator.config import AggregatorConfig
from local_aws.server import FAKE_REGION, MotoServer, client
from local_aws.traffic import zae_limiter
from streamagg_engine.windows import Window
from tests.zae_upstream import support
from tests.zae_upstream.support import Zae, stream_record

zae_moto = support.zae_moto

NOW_MS = 1_767_225_600_000
"""The handler's clock (2026-01-01T00:00:00Z); upstream reads the wall clock."""
ALWAYS_HALF_COMPACT = encode((ScheduleEntry(cron="* * * * *", tz="UTC", scale=0.5),))[0]
ALWAYS_QUARTER_COMPACT = encode((ScheduleEntry(cron="* * * * *", tz="UTC", scale=0.25),))[0]
Limits = Mapping[str, Mapping[str, int]]
_entities = itertools.count(1)


@pytest.fixture(scope="module")
def zae(zae_moto: MotoServer) -> Zae:
    """Upstream's ``dynamodb_table``: one table as zae-limiter creates it, per module."""
    url = zae_moto.endpoint_url
    ddb = client("dynamodb", url)
    table = "test-refill-port"
    ddb.create_table(**schema.get_table_definition(table))
    repository = zae_limiter(url, table, FAKE_REGION)._repository
    config = AggregatorConfig(table_name=table, enable_archival=False, enable_refill=True,
                              snapshot_windows=(Window.HOURLY,))
    return Zae(url, ddb, table, repository.namespace_id, config, _reader=repository)


def image(limits: Limits, **attributes: Any) -> dict[str, Any]:
    """Each limit's ``tk``/``cp``/``ra``/``rp``/``tc`` as ``b_{name}_{field}``, plus the
    item-level ``attributes`` (ints as numbers, strings as strings)."""
    found: dict[str, Any] = {f"b_{name}_{f}": support.n(v)
                             for name, fields in limits.items() for f, v in fields.items()}
    for name, value in attributes.items():
        found[name] = support.s(value) if isinstance(value, str) else support.n(value)
    return found


@dataclass
class Seeded:
    """Upstream's ``_seed_bucket`` item of a fresh entity, and our handler on its records."""

    zae: Zae
    capsys: pytest.CaptureFixture[str]
    entity: str = field(default_factory=lambda: f"entity-{next(_entities)}")
    resource: str = "gpt-4"
    done: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> dict[str, Any]:
        pk = f"{self.zae.ns}/BUCKET#{self.entity}#{self.resource}#0"
        return {"PK": support.s(pk), "SK": support.s("#STATE")}

    def seed(self, limits: Limits, rf_ms: int, **attributes: Any) -> dict[str, Any]:
        """The item upstream seeds; its DynamoDB image (``entity_id``, ``rf``,
        ``shard_count``, no ``resource``)."""
        item = {**self.key, "entity_id": support.s(self.entity),
                **image(limits, rf=rf_ms, shard_count=1, **attributes)}
        self.zae.ddb.put_item(TableName=self.zae.table, Item=item)
        return item

    def record(self, new: Mapping[str, Any], consumed: Mapping[str, int]) -> dict[str, Any]:
        """The MODIFY that ended in ``new`` after ``consumed`` millitokens per limit."""
        old = dict(new)
        for name, amount in consumed.items():
            old[f"b_{name}_tc"] = support.n(int(new[f"b_{name}_tc"]["N"]) - amount)
        return stream_record(old, new, created_ms=int(new["rf"]["N"]))

    def update(self, expression: str, values: Mapping[str, Any],
               names: Mapping[str, str] | None = None) -> None:
        extra = {"ExpressionAttributeNames": dict(names)} if names else {}
        self.zae.ddb.update_item(TableName=self.zae.table, Key=self.key,
                                 UpdateExpression=expression,
                                 ExpressionAttributeValues=image({}, **values), **extra)

    def handle(self, records: list[dict[str, Any]], now_ms: int = NOW_MS) -> dict[str, Any]:
        self.capsys.readouterr()
        assert self.zae.invoke_handler(records, now_ms=now_ms) == {"batchItemFailures": []}
        lines = [json.loads(line) for line in self.capsys.readouterr().out.splitlines()
                 if line.startswith("{")]
        (self.done,) = [line for line in lines if line.get("message") == "batch completed"]
        return self.done

    def number(self, attribute: str) -> int:
        item = self.zae.ddb.get_item(TableName=self.zae.table, Key=self.key,
                                     ConsistentRead=True)["Item"]
        return int(item[attribute]["N"])


@pytest.fixture
def bucket(zae: Zae, capsys: pytest.CaptureFixture[str]) -> Seeded:
    return Seeded(zae, capsys)


EMPTY_TPM = {"tpm": {"tk": 0, "cp": 10_000_000, "ra": 10_000_000, "rp": 60_000,
                     "tc": 10_000_000}}
"""Depleted: 10k capacity and 10k a minute, all of it consumed."""


class TestTryRefillBucketIntegration:
    def test_refill_writes_add_tokens(self, bucket: Seeded) -> None:
        """Upstream: integration/test_bucket_refill.py::TestTryRefillBucketIntegration::test_refill_writes_add_tokens."""  # noqa: E501
        item = bucket.seed(EMPTY_TPM, NOW_MS - 10_000)
        bucket.handle([bucket.record(item, {"tpm": 10_000_000})])
        assert bucket.done["refills_written"] == 1
        assert bucket.number("b_tpm_tk") > 0, "Tokens should have been refilled"
        assert bucket.number("rf") == NOW_MS, "rf should be updated to now_ms"

    def test_refill_skipped_when_sufficient_tokens(self, bucket: Seeded) -> None:
        """Upstream: integration/test_bucket_refill.py::TestTryRefillBucketIntegration::test_refill_skipped_when_sufficient_tokens."""  # noqa: E501
        plenty = {"tpm": {"tk": 9_000_000, "cp": 10_000_000, "ra": 10_000_000, "rp": 60_000,
                          "tc": 1_000_000}}
        item = bucket.seed(plenty, NOW_MS - 60_000)
        bucket.handle([bucket.record(item, {"tpm": 1_000_000})])
        assert bucket.done["refills_written"] == 0
        assert bucket.number("rf") == NOW_MS - 60_000, "rf should not have changed"

    def test_optimistic_lock_prevents_double_refill(self, bucket: Seeded) -> None:
        """Upstream: integration/test_bucket_refill.py::TestTryRefillBucketIntegration::test_optimistic_lock_prevents_double_refill."""  # noqa: E501
        record = bucket.record(bucket.seed(EMPTY_TPM, NOW_MS - 10_000), {"tpm": 10_000_000})
        assert bucket.handle([record])["refills_written"] == 1
        refilled = bucket.number("b_tpm_tk")
        done = bucket.handle([record], now_ms=NOW_MS + 1000)
        assert (done["refills_written"], done["refills_lost_race"]) == (0, 1)
        assert bucket.number("b_tpm_tk") == refilled

    def test_add_commutes_with_concurrent_consume(self, bucket: Seeded) -> None:
        """Upstream: integration/test_bucket_refill.py::TestTryRefillBucketIntegration::test_add_commutes_with_concurrent_consume."""  # noqa: E501
        initial_tk = 500_000
        item = bucket.seed({"tpm": {"tk": initial_tk, "cp": 10_000_000, "ra": 10_000_000,
                                    "rp": 60_000, "tc": 9_500_000}}, NOW_MS - 10_000)
        record = bucket.record(item, {"tpm": 9_500_000})
        bucket.update("ADD b_tpm_tk :consumed, b_tpm_tc :consumed_tc",
                      {":consumed": -1_000_000, ":consumed_tc": 1_000_000})
        bucket.handle([record])
        assert bucket.done["refills_written"] == 1
        assert bucket.number("b_tpm_tk") > initial_tk - 1_000_000

    def test_multiple_limits_single_update(self, bucket: Seeded) -> None:
        """Upstream: integration/test_bucket_refill.py::TestTryRefillBucketIntegration::test_multiple_limits_single_update."""  # noqa: E501
        limits = {**EMPTY_TPM, "rpm": {"tk": 0, "cp": 1_000_000, "ra": 1_000_000, "rp": 60_000,
                                       "tc": 1_000_000}}
        item = bucket.seed(limits, NOW_MS - 10_000)
        bucket.handle([bucket.record(item, {"tpm": 10_000_000, "rpm": 1_000_000})])
        assert bucket.done["refills_written"] == 1
        assert bucket.number("b_tpm_tk") > 0
        assert bucket.number("b_rpm_tk") > 0
        assert bucket.number("rf") == NOW_MS


class TestAggregateAndRefillIntegration:
    def test_stream_to_refill_pipeline(self, bucket: Seeded) -> None:
        """Upstream: integration/test_bucket_refill.py::TestAggregateAndRefillIntegration::test_stream_to_refill_pipeline."""  # noqa: E501
        bucket.resource = "claude-3"
        rf = NOW_MS - 10_000
        tpm = {"cp": 10_000_000, "ra": 10_000_000, "rp": 60_000}
        bucket.seed({"tpm": {"tk": 0, "tc": 20_000_000, **tpm}}, rf)
        images = [{**bucket.key, "entity_id": support.s(bucket.entity),
                   **image({"tpm": {"tk": tk, "tc": tc, **tpm}}, rf=rf, shard_count=1)}
                  for tk, tc in ((5_000_000, 15_000_000), (2_000_000, 18_000_000),
                                 (0, 20_000_000))]
        records = [stream_record(old, new, created_ms=rf)
                   for old, new in itertools.pairwise(images)]
        bucket.handle(records)
        assert bucket.done["refills_written"] == 1
        assert bucket.number("b_tpm_tk") > 0, "Tokens should be refilled after pipeline"
        assert bucket.number("rf") == NOW_MS
        (snapshot,) = bucket.zae.snapshots(bucket.entity, "claude-3", "hourly")
        assert snapshot.counters == {"tpm": 5_000}


class TestScheduledRefillIntegration:
    def seed(self, bucket: Seeded, *, sched: str, vu_ms: int) -> dict[str, Any]:
        return bucket.seed(EMPTY_TPM, NOW_MS - 60_000, sched=sched, sched_tz="UTC", vu=vu_ms)

    def test_refills_to_the_scheduled_share_and_advances_vu(self, bucket: Seeded) -> None:
        """Upstream: integration/test_bucket_refill.py::TestScheduledRefillIntegration::test_refills_to_the_scheduled_share_and_advances_vu."""  # noqa: E501
        item = self.seed(bucket, sched=ALWAYS_HALF_COMPACT, vu_ms=NOW_MS - 1)
        bucket.handle([bucket.record(item, {"tpm": 10_000_000})])
        assert bucket.number("b_tpm_tk") == 5_000_000, "one minute at the halved rate"
        assert bucket.number("rf") == NOW_MS
        assert bucket.number("vu") > NOW_MS, "vu must advance past now"

    def test_a_schedule_changed_underneath_blocks_the_whole_write(self, bucket: Seeded) -> None:
        """Upstream: integration/test_bucket_refill.py::TestScheduledRefillIntegration::test_a_schedule_changed_underneath_blocks_the_whole_write."""  # noqa: E501
        current = self.seed(bucket, sched=ALWAYS_QUARTER_COMPACT, vu_ms=0)
        stale = dict(current, sched=support.s(ALWAYS_HALF_COMPACT))
        bucket.handle([bucket.record(stale, {"tpm": 10_000_000})])
        assert bucket.done["refills_lost_race"] == 1
        assert bucket.number("rf") == NOW_MS - 60_000, "nothing was written"
        assert bucket.number("vu") == 0, "the forced pass is still pending"

    def test_the_same_write_lands_when_the_schedule_still_matches(self, bucket: Seeded) -> None:
        """Upstream: integration/test_bucket_refill.py::TestScheduledRefillIntegration::test_the_same_write_lands_when_the_schedule_still_matches."""  # noqa: E501
        item = self.seed(bucket, sched=ALWAYS_QUARTER_COMPACT, vu_ms=0)
        bucket.handle([bucket.record(item, {"tpm": 10_000_000})])
        assert bucket.number("b_tpm_tk") == 2_500_000
        assert bucket.number("vu") > NOW_MS


class TestMixedScheduleItemIntegration:
    def test_an_unscheduled_limit_refills_at_its_base_rate(self, bucket: Seeded) -> None:
        """Upstream: integration/test_bucket_refill.py::TestMixedScheduleItemIntegration::test_an_unscheduled_limit_refills_at_its_base_rate."""  # noqa: E501
        limits = {name: EMPTY_TPM["tpm"] for name in ("tpm", "spm")}
        item = bucket.seed(limits, NOW_MS - 30_000, sched=ALWAYS_HALF_COMPACT, sched_tz="UTC",
                           b_tpm_sched=BUCKET_SCHED_NONE)
        bucket.handle([bucket.record(item, {"tpm": 10_000_000, "spm": 10_000_000})])
        assert bucket.number("b_tpm_tk") == 5_000_000  # 30s at the base rate
        assert bucket.number("b_spm_tk") == 2_500_000  # the 0.5x sibling on the same item


class TestDurationWindowRollIntegration:
    SESSION = "s.q-1"
    RSA = 18_000

    def test_the_roll_lands_with_the_drip_and_a_later_image_is_refused(
        self, bucket: Seeded,
    ) -> None:
        """Upstream: integration/test_bucket_refill.py::TestDurationWindowRollIntegration::test_the_roll_lands_with_the_drip_and_a_later_image_is_refused."""  # noqa: E501
        ws = NOW_MS - 10_000
        limits = {self.SESSION: {"tk": 0, "cp": 10_000_000, "ra": 0, "rp": 1_000, "tc": 0},
                  **EMPTY_TPM}
        item = bucket.seed(limits, NOW_MS - 30_000, vu=0, **{
            f"b_{self.SESSION}_ws": ws, f"b_{self.SESSION}_rsa": self.RSA})
        record = bucket.record(item, {"tpm": 10_000_000})
        bucket.handle([record])
        assert bucket.number(f"b_{self.SESSION}_tk") == 10_000_000
        assert bucket.number("b_tpm_tk") == 5_000_000  # 30s at the base rate
        assert bucket.number("rf") == NOW_MS  # >= ws: the window is recorded as applied
        assert bucket.number("vu") == ws + self.RSA * 1000
        assert bucket.number(f"b_{self.SESSION}_ws") == ws
        assert bucket.handle([record], now_ms=NOW_MS + 1_000)["refills_lost_race"] == 1

    def test_a_roll_is_refused_once_the_next_window_is_fanned_out(self, bucket: Seeded) -> None:
        """Upstream: integration/test_bucket_refill.py::TestDurationWindowRollIntegration::test_a_roll_is_refused_once_the_next_window_is_fanned_out."""  # noqa: E501
        ws, old_rf = NOW_MS - 10_000, NOW_MS - 30_000
        limits = {self.SESSION: {"tk": 7, "cp": 10_000_000, "ra": 0, "rp": 1_000, "tc": 0}}
        item = bucket.seed(limits, old_rf, vu=0, **{
            f"b_{self.SESSION}_ws": ws, f"b_{self.SESSION}_rsa": self.RSA})
        record = bucket.record(item, {})
        bucket.update("SET #ws = :ws, #rsa = :rsa, #vu = :zero",
                      {":ws": ws + 5_000, ":rsa": self.RSA, ":zero": 0},
                      {"#ws": f"b_{self.SESSION}_ws", "#rsa": f"b_{self.SESSION}_rsa",
                       "#vu": "vu"})
        bucket.handle([record])
        assert bucket.done["refills_lost_race"] == 1
        assert bucket.number(f"b_{self.SESSION}_tk") == 7
        assert bucket.number("rf") == old_rf
