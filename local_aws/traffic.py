"""Realistic traffic on a zae-limiter table, written by zae-limiter's own client.

Entities acquire tokens on several resources and limits, some of them refund part of
what they took, and limit changes leave audit events. Then the audit items are removed
the two ways DynamoDB removes them: by TTL (emulated here, since moto never expires
items) and by hand. Everything written is also tallied, as the ground truth a run of the
aggregator must reproduce.
"""

from __future__ import annotations

import random
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

AUDIT_MARKER = "/AUDIT#"


@dataclass
class Traffic:
    namespace_id: str
    tokens: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(entity, resource, limit) → net whole tokens consumed."""
    acquisitions: int = 0
    refunds: int = 0
    audit_removed_by_ttl: int = 0
    audit_removed_by_hand: int = 0


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
    progress: Callable[[str], None] = lambda _: None,
) -> Traffic:
    from zae_limiter import Limit  # noqa: PLC0415 - dev-only dep

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
        resource = rng.choice(resources)
        asked = rng.randrange(100, 4000)
        with limiter.acquire(entity, resource, consume={"rpm": 1, "tpm": asked}) as lease:
            used = asked
            if rng.random() < 0.3:
                used = rng.randrange(0, asked)
                lease.adjust(tpm=used - asked)
                traffic.refunds += 1
        traffic.tokens[(entity, resource, "rpm")] += 1
        traffic.tokens[(entity, resource, "tpm")] += used
        traffic.acquisitions += 1
        if (i + 1) % 20 == 0:
            progress(f"{i + 1}/{acquisitions} acquisitions")
    return traffic


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
