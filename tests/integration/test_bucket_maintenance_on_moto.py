"""zae-limiter 0.17's bucket maintenance through our handler, on moto (issue #14's defects).

Each test writes bucket items the way zae-limiter 0.17 does (its ``schema`` names, a table
from its own ``get_table_definition``), changes one so the stream carries a MODIFY, and
drains the stream through the handler's entry point with refill on; then reads the items
back. The defects our own refill had: ``wcu`` divided by the shard count, a balance over
its cap kept without a ``vu`` stamp, no sharding backstop, no schedules.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from zae_limiter.schedule import ScheduleEntry, encode
from zae_limiter.schema import (
    BUCKET_FIELD_SCHED,
    BUCKET_FIELD_SCHED_TZ,
    BUCKET_FIELD_VU,
    bucket_attr,
    pk_bucket,
    sk_state,
)

from aggregator.config import AggregatorConfig
from local_aws.server import session
from tests.moto_fixtures import LocalAws

NS = "default"
RESOURCE = "gpt-4"
WCU = {"tk": 0, "cp": 1_000_000, "ra": 1_000_000, "rp": 1_000, "tc": 0}
"""zae-limiter's write-capacity limit as it stamps it: 1,000 writes a second per shard."""


class Buckets:
    """Bucket items in a zae-limiter table, written with a boto3 resource as the client does."""

    def __init__(self, aws: LocalAws) -> None:
        self.aws = aws
        self.name, self.stream = aws.create_zae_table()
        self.table = session().resource("dynamodb", endpoint_url=aws.endpoint_url).Table(
            self.name)
        config = AggregatorConfig(table_name=self.name, enable_archival=False)
        self.mapping = aws.mapping(self.stream, aws.runtime(config))
        """One event source mapping, polled by :meth:`drain` from where it stopped."""

    def put(self, entity: str, *, shard: int = 0, shard_count: int = 1, rf: int,
            limits: dict[str, dict[str, int]], extra: dict[str, Any] | None = None) -> None:
        item: dict[str, Any] = {
            "PK": pk_bucket(NS, entity, RESOURCE, shard), "SK": sk_state(),
            "entity_id": entity, "resource": RESOURCE, "rf": rf, "shard_count": shard_count,
            **(extra or {}),
        }
        for name, fields in limits.items():
            for field, value in fields.items():
                item[bucket_attr(name, field)] = value
        self.table.put_item(Item=item)

    def modify(self, entity: str, shard: int = 0, **values: Any) -> None:
        """A change as a client or a config fan-out makes it: one MODIFY on the stream."""
        names = {f"#a{i}": name for i, name in enumerate(values)}
        self.table.update_item(
            Key={"PK": pk_bucket(NS, entity, RESOURCE, shard), "SK": sk_state()},
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{i}": v for i, v in enumerate(values.values())})

    def get(self, entity: str, shard: int = 0) -> dict[str, Any]:
        response = self.table.get_item(
            Key={"PK": pk_bucket(NS, entity, RESOURCE, shard), "SK": sk_state()},
            ConsistentRead=True)
        item: dict[str, Any] = response.get("Item", {})
        return item

    def drain(self) -> None:
        """What the stream holds past the last poll, through our handler (refill on)."""
        self.mapping.drain()
        assert not self.aws.dlq_messages


@pytest.fixture
def buckets(aws: LocalAws) -> Buckets:
    return Buckets(aws)


def now_ms() -> int:
    return int(time.time() * 1000)


def test_wcu_is_refilled_to_its_full_capacity_on_every_shard_never_divided(
    buckets: Buckets,
) -> None:
    """Shard 1 of 4: ``rpm`` tops up to its quarter, ``wcu`` to all of its 1,000,000."""
    rf = now_ms() - 2_000
    rpm = {"tk": 0, "cp": 4_000_000, "ra": 4_000_000, "rp": 60_000, "tc": 0}
    buckets.put("sharded", shard=1, shard_count=4, rf=rf, limits={"rpm": rpm, "wcu": WCU})
    buckets.modify("sharded", shard=1, b_rpm_tc=2_000_000)  # a busy shard: it needs a refill
    buckets.drain()
    item = buckets.get("sharded", shard=1)
    assert item["b_wcu_tk"] == 1_000_000  # our own refill wrote 250,000 here
    assert 0 < item["b_rpm_tk"] <= 1_000_000  # rpm's share is divided: 4,000,000 / 4
    assert item["rf"] > rf


def test_a_balance_over_its_cap_is_trimmed_without_a_vu_stamp(buckets: Buckets) -> None:
    rpm = {"tk": 900_000, "cp": 1_000_000, "ra": 1_000_000, "rp": 60_000, "tc": 0}
    buckets.put("shrunk", rf=now_ms() - 1_000, limits={"rpm": rpm})
    buckets.modify("shrunk", b_rpm_cp=500_000)  # the limit shrinks under a full balance
    buckets.drain()
    item = buckets.get("shrunk")
    assert BUCKET_FIELD_VU not in item
    assert item["b_rpm_tk"] == 500_000  # our own refill left 900,000


def test_shard_0_under_20_percent_wcu_is_doubled_and_its_new_shard_created(
    buckets: Buckets,
) -> None:
    """``wcu`` drained, refilling too slowly to recover by now: the backstop doubles shard 0;
    the doubling's own MODIFY then creates shard 1 (the propagation, next batch)."""
    slow_wcu = {**WCU, "rp": 86_400_000}
    rpm = {"tk": 1_000_000, "cp": 1_000_000, "ra": 1_000_000, "rp": 60_000, "tc": 0}
    buckets.put("hot", rf=now_ms(), limits={"rpm": rpm, "wcu": slow_wcu})
    buckets.modify("hot", b_wcu_tc=1_000_000)
    buckets.drain()
    assert buckets.get("hot")["shard_count"] == 2
    assert buckets.get("hot", shard=1) == {}
    buckets.drain()  # the next poll reads the doubling itself
    clone = buckets.get("hot", shard=1)
    assert clone["shard_count"] == 2
    assert clone["b_rpm_tk"] == 500_000  # a fresh share of rpm: 1,000,000 / 2
    assert clone["b_wcu_tk"] == 1_000_000  # wcu is per partition, never divided


def test_shard_count_2_to_4_restamps_shard_1_and_creates_shards_2_and_3(
    buckets: Buckets,
) -> None:
    rf = now_ms()
    rpm = {"tk": 500_000, "cp": 1_000_000, "ra": 1_000_000, "rp": 60_000, "tc": 0}
    for shard in (0, 1):
        buckets.put("split", shard=shard, shard_count=2, rf=rf, limits={"rpm": rpm})
    buckets.modify("split", shard=0, shard_count=4)  # a client doubled shard 0, then failed
    buckets.drain()
    assert [buckets.get("split", shard)["shard_count"] for shard in range(4)] == [4, 4, 4, 4]
    assert buckets.get("split", 1)["b_rpm_tk"] == 500_000  # restamped, not rewritten
    for shard in (2, 3):
        created = buckets.get("split", shard)
        assert created["b_rpm_tk"] == 250_000  # a quarter of 1,000,000
        assert created["b_rpm_tc"] == 0


def test_a_scheduled_bucket_refills_to_its_scheduled_ceiling(buckets: Buckets) -> None:
    """A schedule halving the limit all day: the drain stops at half of ``cp``, not at cp."""
    always_half, _ = encode((ScheduleEntry(cron="* * * * *", tz="UTC", scale=0.5),))
    tpm = {"tk": 0, "cp": 10_000_000, "ra": 10_000_000, "rp": 60_000, "tc": 0}
    start = now_ms()
    buckets.put("scheduled", rf=start - 120_000, limits={"tpm": tpm},
                extra={BUCKET_FIELD_SCHED: always_half, BUCKET_FIELD_SCHED_TZ: "UTC",
                       BUCKET_FIELD_VU: start - 1})
    buckets.modify("scheduled", b_tpm_tc=10_000_000)
    buckets.drain()
    item = buckets.get("scheduled")
    assert item["b_tpm_tk"] == 5_000_000  # two minutes at the halved rate, capped at half
    assert item[BUCKET_FIELD_VU] > start  # the fast path may resume: vu moved past now
