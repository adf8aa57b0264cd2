"""Realistic traffic on a zae-limiter table, written by zae-limiter's own client.

Entities acquire tokens on several resources and limits, some of them refund part of
what they took, and limit changes leave audit events. Then the audit items are removed
the two ways DynamoDB removes them: by TTL (emulated here, since moto never expires
items) and by hand. Everything written is also tallied, as the ground truth a run of the
aggregator must reproduce.

On request the traffic also drives the three bucket shapes zae-limiter 0.17 adds to the
plain token bucket, each on a bucket of its own (:data:`SOFT`, :data:`SHARDED`,
:data:`QUOTA`): a soft limit metered into debt, a bucket the client has sharded, and a
monthly quota. Their ground truth is what zae-limiter's reader and ``available`` must
show once the aggregator has run: tokens, the overdraw count, the shard count, and the
balance (capacity minus consumption, which a quota keeps until its reset).
"""

from __future__ import annotations

import random
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

AUDIT_MARKER = "/AUDIT#"


@dataclass(frozen=True)
class SpecialBucket:
    """A bucket the traffic gives one of zae-limiter 0.17's features, and its limit."""

    entity: str
    resource: str
    limit: str
    capacity: int
    """The limit's capacity for the whole entity (every shard together)."""
    drip: int
    """Tokens it may refill between the traffic and a check minutes later: none for a
    quota, the whole capacity for a per-minute limit."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.entity, self.resource, self.limit)


SOFT = SpecialBucket("tenant-0", "embeddings", "tpd", 5_000, drip=50)
"""A soft daily limit (``Limit.per_day(..., soft=True)``): metered, never enforced, so the
traffic runs it into debt. It refills 5,000 a day, 0.06 tokens a second (50 tokens in 14
minutes, 208 in an hour), so which debit left it in debt does not depend on timing."""
SHARDED = SpecialBucket("tenant-hot", "gpt-4", "rpm", 10_000, drip=10_000)
"""A bucket the client doubles twice (1 → 2 → 4 shards), as it does on a hot partition;
the acquisitions between the doublings land on shards 0 and 1 (see :func:`_sharded`)."""
SHARDED_COUNT = 4
"""The shard count the client doubles :data:`SHARDED` to."""
QUOTA = SpecialBucket("tenant-1", "fine-tune", "jobs", 1_000, drip=0)
"""A quota of 1,000 jobs a month, back to full at 00:00 UTC on the 1st
(``Limit.quota(..., cron="0 0 1 * *")``): it never drips, so its balance is exact."""
QUOTA_CRON = "0 0 1 * *"
_QUOTA_MAX_ASK = 40
_HUNDREDS = 100
"""Soft debits and adjustments are whole hundreds, so no balance sits within a refill's
reach of zero."""


@dataclass
class Traffic:
    namespace_id: str
    tokens: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(entity, resource, limit) → net whole tokens consumed."""
    events: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(entity, resource) → counter changes: one per limit a write moved (an acquire of two
    limits is 2, a refund of one is 1), which is what zae-limiter's ``total_events`` counts."""
    overdrawn: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(entity, resource, limit) → writes that debited a soft limit and left it in debt
    (zae-limiter's ``{limit}#od`` counter, ``UsageSnapshot.overdrawn``)."""
    shard_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    """(entity, resource) → the shard count the client doubled a sharded bucket to."""
    special: tuple[SpecialBucket, ...] = ()
    """The feature buckets this traffic drove."""
    acquisitions: int = 0
    refunds: int = 0
    audit_removed_by_ttl: int = 0
    audit_removed_by_hand: int = 0

    def balance(self, bucket: SpecialBucket) -> int:
        """Capacity minus consumption: what the bucket holds before any refill."""
        return bucket.capacity - self.tokens[bucket.key]

    def available(self, bucket: SpecialBucket) -> tuple[int, int]:
        """The least and the most zae-limiter's ``available`` may read for ``bucket`` now:
        its balance, plus what it may have refilled since, never above its capacity."""
        balance = self.balance(bucket)
        return balance, min(bucket.capacity, balance + bucket.drip)


@dataclass
class TtlEmulator:
    """Remembers which removals stand for TTL expiries, for the local event source mapping."""

    expired: set[tuple[str, str]] = field(default_factory=set)

    def is_ttl_delete(self, keys: Any) -> bool:
        return (keys["PK"]["S"], keys["SK"]["S"]) in self.expired


def zae_limiter(endpoint_url: str, table_name: str, region: str) -> Any:
    """A zae-limiter client on an existing table (no CloudFormation of its own)."""
    from zae_limiter import SyncRateLimiter, SyncRepository  # noqa: PLC0415 - dev-only dep

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        repository = (SyncRepository.builder().stack(table_name).region(region)
                      .endpoint_url(endpoint_url).namespace("default").build())
    return SyncRateLimiter(repository=repository)


def generate(
    limiter: Any,
    *,
    seed: int,
    entities: int = 4,
    resources: tuple[str, ...] = ("gpt-4", "claude-3"),
    acquisitions: int = 60,
    soft_acquisitions: int = 0,
    sharded_acquisitions: int = 0,
    quota_acquisitions: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> Traffic:
    """Plain traffic, then as many acquisitions on each feature bucket as asked (none by
    default). The plain part draws from ``seed`` first, so it is the same with or without
    the rest."""
    from zae_limiter import Limit  # noqa: PLC0415 - dev-only dep

    if quota_acquisitions * _QUOTA_MAX_ASK > QUOTA.capacity:
        raise ValueError(f"at most {QUOTA.capacity // _QUOTA_MAX_ASK} quota acquisitions "
                         f"fit the quota of {QUOTA.capacity}")
    rng = random.Random(seed)
    traffic = Traffic(namespace_id=limiter._repository.namespace_id)
    names = [f"tenant-{i}" for i in range(entities)]
    for entity in names:
        for resource in resources:
            limiter.set_limits(entity, [Limit.per_minute("rpm", 10_000),
                                        Limit.per_minute("tpm", 5_000_000)], resource=resource)
    progress(f"set limits for {entities} entities x {len(resources)} resources")
    for i in range(acquisitions):
        entity = names[min(int(rng.paretovariate(1.2)) - 1, entities - 1)]
        _acquire_tokens(limiter, traffic, rng, entity, rng.choice(resources))
        if (i + 1) % 20 == 0:
            progress(f"{i + 1}/{acquisitions} acquisitions")
    if soft_acquisitions:
        _soft_debt(limiter, traffic, rng, soft_acquisitions)
        progress(f"{soft_acquisitions} acquisitions on a soft limit, "
                 f"{traffic.overdrawn[SOFT.key]} writes left it in debt")
    if sharded_acquisitions:
        _sharded(limiter, traffic, rng, sharded_acquisitions)
        progress(f"{sharded_acquisitions} acquisitions on a bucket the client sharded, "
                 f"now {traffic.shard_counts[(SHARDED.entity, SHARDED.resource)]} shards")
    if quota_acquisitions:
        _quota(limiter, traffic, rng, quota_acquisitions)
        progress(f"{quota_acquisitions} acquisitions on a monthly quota, "
                 f"{traffic.balance(QUOTA)} of {QUOTA.capacity} left")
    return traffic


def _acquire_tokens(limiter: Any, traffic: Traffic, rng: random.Random, entity: str,
                    resource: str) -> None:
    """One request (``rpm``) of up to 4,000 tokens (``tpm``), 30 % of them refunded in part."""
    asked = rng.randrange(100, 4000)
    with limiter.acquire(entity, resource, consume={"rpm": 1, "tpm": asked}) as lease:
        used = asked
        if rng.random() < 0.3:
            used = rng.randrange(0, asked)
            lease.adjust(tpm=used - asked)
            traffic.refunds += 1
            traffic.events[(entity, resource)] += 1
    traffic.tokens[(entity, resource, "rpm")] += 1
    traffic.tokens[(entity, resource, "tpm")] += used
    traffic.events[(entity, resource)] += 2
    traffic.acquisitions += 1


def _soft_debt(limiter: Any, traffic: Traffic, rng: random.Random, count: int) -> None:
    """Debits of 1,000-3,900 on a soft limit of 5,000, some adjusted up or down afterwards.

    Each write that moves the soft counter up and leaves the balance below zero is one
    overdraw; a refund never is, even in debt. The first debit never starts in debt.
    """
    from zae_limiter import Limit  # noqa: PLC0415 - dev-only dep

    entity, resource = SOFT.entity, SOFT.resource
    limiter.set_limits(entity, [Limit.per_minute("rpm", 10_000),
                                Limit.per_day(SOFT.limit, SOFT.capacity, soft=True)],
                       resource=resource)
    traffic.special += (SOFT,)

    def debit(amount: int) -> None:
        traffic.tokens[SOFT.key] += amount
        traffic.events[(entity, resource)] += 1
        if amount > 0 and traffic.balance(SOFT) < 0:
            traffic.overdrawn[SOFT.key] += 1

    for _ in range(count):
        asked = rng.randrange(10, 40) * _HUNDREDS
        with limiter.acquire(entity, resource, consume={"rpm": 1, SOFT.limit: asked}) as lease:
            traffic.tokens[(entity, resource, "rpm")] += 1
            traffic.events[(entity, resource)] += 1
            debit(asked)
            if rng.random() < 0.4:
                change = rng.randrange(1 - asked // _HUNDREDS, 10) * _HUNDREDS or _HUNDREDS
                lease.adjust(**{SOFT.limit: change})
                traffic.refunds += int(change < 0)
                debit(change)
        traffic.acquisitions += 1


def _sharded(limiter: Any, traffic: Traffic, rng: random.Random, count: int) -> None:
    """The first acquisition creates shard 0; the client doubles the bucket to two shards
    and the rest of the acquisitions spread over both by its own random draw, creating
    shard 1 on the first that draws it; at the end it doubles once more, to four.

    The doublings are the client's own (``bump_shard_count``, what it calls when a shard's
    ``wcu`` runs out: a hot partition takes 1,000 writes a second, more than moto serves).
    Shards 2 and 3 are left for the aggregator to create, as after a client that doubled
    and then went quiet; shard 0 still holds the balance it had as the only shard.
    """
    from zae_limiter import Limit  # noqa: PLC0415 - dev-only dep

    entity, resource = SHARDED.entity, SHARDED.resource
    limiter.set_limits(entity, [Limit.per_minute(SHARDED.limit, SHARDED.capacity),
                                Limit.per_minute("tpm", 5_000_000)], resource=resource)
    traffic.special += (SHARDED,)
    _acquire_tokens(limiter, traffic, rng, entity, resource)
    shards = limiter._repository.bump_shard_count(entity, resource, 1)
    for _ in range(count - 1):
        _acquire_tokens(limiter, traffic, rng, entity, resource)
    traffic.shard_counts[(entity, resource)] = limiter._repository.bump_shard_count(
        entity, resource, shards)


def _quota(limiter: Any, traffic: Traffic, rng: random.Random, count: int) -> None:
    """Acquisitions of 1-39 jobs on the monthly quota; it is never exhausted."""
    from zae_limiter import Limit  # noqa: PLC0415 - dev-only dep

    entity, resource = QUOTA.entity, QUOTA.resource
    limiter.set_limits(entity, [Limit.quota(QUOTA.limit, QUOTA.capacity, cron=QUOTA_CRON)],
                       resource=resource)
    traffic.special += (QUOTA,)
    for _ in range(count):
        jobs = rng.randrange(1, _QUOTA_MAX_ASK)
        with limiter.acquire(entity, resource, consume={QUOTA.limit: jobs}):
            pass
        traffic.tokens[QUOTA.key] += jobs
        traffic.events[(entity, resource)] += 1
        traffic.acquisitions += 1


def remove_audit_items(ddb: Any, table_name: str, traffic: Traffic, ttl: TtlEmulator) -> None:
    """Expire every audit item by TTL but the last, which an operator deletes by hand."""
    items: list[tuple[str, str]] = []
    pages = ddb.get_paginator("scan").paginate(
        TableName=table_name, ProjectionExpression="PK, SK",
        FilterExpression="contains(PK, :marker)",
        ExpressionAttributeValues={":marker": {"S": AUDIT_MARKER}},
    )
    for page in pages:
        items.extend((item["PK"]["S"], item["SK"]["S"]) for item in page["Items"])
    items.sort()
    for index, (pk, sk) in enumerate(items):
        by_hand = index == len(items) - 1
        if not by_hand:
            ttl.expired.add((pk, sk))
        ddb.delete_item(TableName=table_name, Key={"PK": {"S": pk}, "SK": {"S": sk}})
        if by_hand:
            traffic.audit_removed_by_hand += 1
        else:
            traffic.audit_removed_by_ttl += 1
