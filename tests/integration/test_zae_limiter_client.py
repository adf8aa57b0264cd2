"""zae-limiter itself writes the table; its own reader must see exactly what it acquired.

The second traffic drives zae-limiter 0.17's bucket features too (a soft limit in debt, a
bucket of four shards, a monthly quota); after our handler has run over its stream, the
reader's snapshots and the client's ``available`` are compared with that traffic.
"""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from zae_limiter import RateLimitExceeded, schema

from aggregator.config import AggregatorConfig
from local_aws.server import MotoServer, client
from local_aws.traffic import (
    QUOTA,
    SHARDED,
    SHARDED_COUNT,
    SOFT,
    Traffic,
    TtlEmulator,
    generate,
    remove_audit_items,
    zae_limiter,
)
from streamagg_engine.windows import Window
from tests.moto_fixtures import LocalAws

WINDOWS = (Window.HOURLY, Window.DAILY, Window.MONTHLY)


def test_zae_limiters_reader_returns_exactly_the_tokens_acquired(aws: LocalAws) -> None:
    table, stream = aws.create_zae_table()
    limiter = zae_limiter(aws.endpoint_url, table, "us-east-1")
    traffic = generate(limiter, seed=7, entities=3, acquisitions=40)
    bucket = aws.create_bucket()
    ttl = TtlEmulator()
    remove_audit_items(aws.ddb, table, traffic, ttl)
    config = AggregatorConfig(table_name=table, archive_bucket_name=bucket,
                              snapshot_windows=WINDOWS)
    report = aws.drain(stream, config, batch_size=10, ttl_keys=ttl.is_ttl_delete)
    assert report.records_sent_to_dlq == 0

    seen: dict[tuple[str, str, str], int] = {}
    for entity, resource in {(entity, resource) for entity, resource, _ in traffic.tokens}:
        snapshots, _next = limiter.get_usage_snapshots(
            entity_id=entity, resource=resource, window_type="daily", limit=100)
        for snapshot in snapshots:
            for name, amount in snapshot.counters.items():
                key = (entity, resource, name)
                seen[key] = seen.get(key, 0) + amount
    assert seen == {k: v for k, v in traffic.tokens.items() if v}

    summary = limiter.get_usage_summary(entity_id="tenant-0", resource="gpt-4",
                                        window_type="monthly")
    assert summary.total == {
        name: traffic.tokens[("tenant-0", "gpt-4", name)] for name in ("rpm", "tpm")
        if traffic.tokens[("tenant-0", "gpt-4", name)]
    }
    archived = sum(gzip.decompress(body).count(b"\n") for body in aws.objects(bucket).values())
    assert archived == traffic.audit_removed_by_ttl + traffic.audit_removed_by_hand
    assert traffic.audit_removed_by_ttl > 0


@dataclass
class Run:
    """The feature traffic, and the table after our handler ran over all of its stream."""

    aws: LocalAws
    table: str
    limiter: Any
    traffic: Traffic

    def daily(self, entity: str, resource: str) -> tuple[Counter[str], int, Counter[str]]:
        """What zae-limiter's reader sums over the daily snapshots: tokens per limit,
        ``total_events`` and ``overdrawn`` per limit."""
        tokens: Counter[str] = Counter()
        overdrawn: Counter[str] = Counter()
        events = 0
        snapshots, _next = self.limiter.get_usage_snapshots(
            entity_id=entity, resource=resource, window_type="daily", limit=100)
        for snapshot in snapshots:
            tokens.update(snapshot.counters)
            overdrawn.update(snapshot.overdrawn)
            events += snapshot.total_events
        return tokens, events, overdrawn

    def shard_items(self, entity: str, resource: str) -> dict[int, dict[str, Any]]:
        """The bucket's shard items on the table, by shard."""
        items = {}
        for shard in range(SHARDED_COUNT * 2):
            key = {"PK": {"S": schema.pk_bucket(self.traffic.namespace_id, entity, resource,
                                                shard)},
                   "SK": {"S": schema.sk_state()}}
            item = self.aws.ddb.get_item(TableName=self.table, Key=key,
                                         ConsistentRead=True).get("Item")
            if item is not None:
                items[shard] = item
        return items


@pytest.fixture(scope="module")
def run(moto: MotoServer) -> Run:
    url = moto.endpoint_url
    aws = LocalAws(url, client("dynamodb", url), client("dynamodbstreams", url),
                   client("s3", url), client("sqs", url))
    table, stream = aws.create_zae_table()
    limiter = zae_limiter(url, table, "us-east-1")
    traffic = generate(limiter, seed=11, entities=3, acquisitions=20, soft_acquisitions=12,
                       sharded_acquisitions=20, quota_acquisitions=10)
    config = AggregatorConfig(table_name=table, archive_bucket_name=aws.create_bucket(),
                              snapshot_windows=WINDOWS)
    report = aws.drain(stream, config, batch_size=10)
    assert report.records_sent_to_dlq == 0
    return Run(aws, table, limiter, traffic)


def test_the_reader_sees_every_token_of_every_bucket_kind(run: Run) -> None:
    traffic = run.traffic
    assert {bucket.key for bucket in traffic.special} == {SOFT.key, SHARDED.key, QUOTA.key}
    seen: Counter[tuple[str, str, str]] = Counter()
    for entity, resource in {(entity, resource) for entity, resource, _ in traffic.tokens}:
        tokens, _events, _overdrawn = run.daily(entity, resource)
        seen.update({(entity, resource, name): amount for name, amount in tokens.items()})
    assert seen == +traffic.tokens


def test_total_events_count_one_per_limit_a_write_moved(run: Run) -> None:
    """zae-limiter counts a two-limit acquire as 2 events and a refund of one limit as 1."""
    for (entity, resource), expected in run.traffic.events.items():
        _tokens, events, _overdrawn = run.daily(entity, resource)
        assert (entity, resource, events) == (entity, resource, expected)


def test_a_soft_limit_in_debt_is_read_as_overdrawn(run: Run) -> None:
    traffic = run.traffic
    assert traffic.overdrawn[SOFT.key] >= 2
    assert traffic.balance(SOFT) < 0
    _tokens, _events, overdrawn = run.daily(SOFT.entity, SOFT.resource)
    assert overdrawn == Counter({SOFT.limit: traffic.overdrawn[SOFT.key]})
    for entity, resource in {(entity, resource) for entity, resource, _ in traffic.tokens}:
        if (entity, resource) != (SOFT.entity, SOFT.resource):
            assert run.daily(entity, resource)[2] == Counter()


def test_a_soft_limit_stays_in_the_debt_the_traffic_left(run: Run) -> None:
    """Our refill drips a soft limit like any other; it does not forgive the debt."""
    available = run.limiter.available(SOFT.entity, SOFT.resource)[SOFT.limit]
    low, high = run.traffic.available(SOFT)
    assert low <= available <= high < 0


def test_a_sharded_bucket_is_read_as_one_over_its_shards(run: Run) -> None:
    traffic = run.traffic
    assert traffic.shard_counts == {(SHARDED.entity, SHARDED.resource): SHARDED_COUNT}
    items = run.shard_items(SHARDED.entity, SHARDED.resource)
    used = [shard for shard, item in items.items()
            if int(item[schema.bucket_attr(SHARDED.limit, schema.BUCKET_FIELD_TC)]["N"])]
    assert used == [0, 1]
    tokens, _events, _overdrawn = run.daily(SHARDED.entity, SHARDED.resource)
    assert tokens == Counter({name: traffic.tokens[(SHARDED.entity, SHARDED.resource, name)]
                              for name in (SHARDED.limit, "tpm")})
    summary = run.limiter.get_usage_summary(entity_id=SHARDED.entity,
                                            resource=SHARDED.resource, window_type="monthly")
    assert summary.total[SHARDED.limit] == traffic.tokens[SHARDED.key]


def test_every_shard_exists_and_knows_the_shard_count(run: Run) -> None:
    """The client creates only the shards it draws; the aggregator creates the others
    and stamps the count the client doubled to on each."""
    items = run.shard_items(SHARDED.entity, SHARDED.resource)
    assert {shard: int(item["shard_count"]["N"]) for shard, item in items.items()} == \
        dict.fromkeys(range(SHARDED_COUNT), SHARDED_COUNT)


def test_no_shard_holds_more_than_its_share_but_wcu_is_never_divided(run: Run) -> None:
    """Shard 0 held a whole bucket's balance, shard 1 half of one, when the client doubled
    to four: the aggregator trims each limit to a quarter of its capacity. ``wcu`` guards
    the partition's own write capacity, so every shard keeps all of it."""
    for shard, item in run.shard_items(SHARDED.entity, SHARDED.resource).items():
        for name in (SHARDED.limit, "tpm", schema.WCU_LIMIT_NAME):
            held = int(item[schema.bucket_attr(name, schema.BUCKET_FIELD_TK)]["N"])
            share = int(item[schema.bucket_attr(name, schema.BUCKET_FIELD_CP)]["N"]) \
                // SHARDED_COUNT
            if name == schema.WCU_LIMIT_NAME:
                assert held > share, (shard, name, held)
            else:
                assert held <= share, (shard, name, held)


def test_a_sharded_bucket_offers_its_capacity_once_over_all_shards(run: Run) -> None:
    """The client sums every shard's balance: after the aggregator has created the shards
    the client did not draw and trimmed the others, that is the capacity less what the
    traffic used (less still, by what has refilled since)."""
    available = run.limiter.available(SHARDED.entity, SHARDED.resource)[SHARDED.limit]
    low, high = run.traffic.available(SHARDED)
    assert low <= available <= high == SHARDED.capacity


def test_a_quota_keeps_its_balance_until_its_reset(run: Run) -> None:
    """A quota never drips: after our refill the client still reads capacity minus use,
    and asking for one job more than that is refused."""
    balance = run.traffic.balance(QUOTA)
    assert 0 < balance < QUOTA.capacity
    assert run.limiter.available(QUOTA.entity, QUOTA.resource) == {QUOTA.limit: balance}
    too_many = {QUOTA.limit: balance + 1}
    with pytest.raises(RateLimitExceeded), \
            run.limiter.acquire(QUOTA.entity, QUOTA.resource, consume=too_many):
        pass
    tokens, _events, _overdrawn = run.daily(QUOTA.entity, QUOTA.resource)
    assert tokens == Counter({QUOTA.limit: run.traffic.tokens[QUOTA.key]})
