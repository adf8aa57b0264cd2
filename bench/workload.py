"""The standard workload: seeded, Lambda-shaped DynamoDB stream batches in zae-limiter's schema.

Every figure is measured on the same records, generated from a fixed seed:

* 1,000 entities whose popularity is Zipf-skewed (rank ``k`` drawn with weight ``k**-1.1``),
  3 resources each, one bucket item (shard 0) per entity and resource, 2 limits per bucket
  (``rpm``, ``tpm``) stored as millitokens in ``b_{limit}_{tk,cp,ra,rp,tc}``;
* batches of 1,000 records: 95 % bucket MODIFY records (an acquire, or a refund of an
  earlier over-estimate) and 5 % audit REMOVE records (mostly TTL expiries, some manual
  deletes), spread evenly over two hours of stream time;
* the client is simulated the way zae-limiter's works: its fast path debits a bucket
  without refilling it, and when the balance cannot cover a request its slow path refills
  (``rf`` moves to now) before it debits, so busy buckets run low and need refills.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local_aws.stream_records import lambda_record

SEED = 20240515
NAMESPACE = "nsA1b2C3d4E"
ENTITIES = 1_000
ZIPF_S = 1.1
RESOURCES = ("gpt-4o", "claude-sonnet", "text-embedding")
BATCH_SIZE = 1_000
AUDIT_SHARE = 0.05
REFUND_SHARE = 0.15
SPAN_MS = 2 * 3_600_000
START_MS = 1_718_409_600_000  # 2024-06-15T00:00:00Z
_SEQUENCE_BASE = 4_421_584_500_000_000_017_450_439_091
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
_ACTIONS = ("limits_set", "limits_deleted", "entity_created", "entity_updated")


@dataclass
class _Limit:
    capacity: int
    """Millitokens (also the refill amount per period)."""
    period_ms: int
    tokens: int
    consumed: int = 0


@dataclass
class _Bucket:
    entity: str
    resource: str
    refilled_at: int
    limits: dict[str, _Limit] = field(default_factory=dict)
    outstanding: list[int] = field(default_factory=list)
    """tpm millitokens of recent acquires that a refund may give back in part."""


@dataclass(frozen=True)
class Workload:
    batches: list[list[dict[str, Any]]]
    seed: int

    @property
    def records(self) -> int:
        return sum(len(b) for b in self.batches)


def generate(batches: int = 20, batch_size: int = BATCH_SIZE, seed: int = SEED) -> Workload:
    """``batches`` batches of ``batch_size`` records, deterministic for a given seed."""
    rng = random.Random(seed)
    weights = [1.0 / (rank ** ZIPF_S) for rank in range(1, ENTITIES + 1)]
    cumulative = list(itertools.accumulate(weights))
    entities = [f"tenant-{i:04d}" for i in range(ENTITIES)]
    rng.shuffle(entities)  # popularity is not alphabetical
    buckets: dict[tuple[str, str], _Bucket] = {}
    total = batches * batch_size
    sequence = _SEQUENCE_BASE
    out: list[list[dict[str, Any]]] = []
    for b in range(batches):
        batch = []
        for i in range(batch_size):
            now_ms = START_MS + (b * batch_size + i) * SPAN_MS // total
            sequence += rng.randint(100, 10_000)
            if rng.random() < AUDIT_SHARE:
                batch.append(_audit_removal(rng, entities, cumulative, now_ms, sequence))
                continue
            entity = entities[bisect.bisect_left(cumulative, rng.random() * cumulative[-1])]
            resource = rng.choice(RESOURCES)
            bucket = buckets.get((entity, resource))
            if bucket is None:
                bucket = buckets[(entity, resource)] = _new_bucket(entity, resource, now_ms, rng)
            old = _image(bucket)
            _client_request(bucket, now_ms, rng)
            batch.append(_record("MODIFY", _keys(old), sequence, now_ms, old=old,
                                 new=_image(bucket)))
        out.append(batch)
    return Workload(batches=out, seed=seed)


def _new_bucket(entity: str, resource: str, now_ms: int, rng: random.Random) -> _Bucket:
    bucket = _Bucket(entity, resource, refilled_at=now_ms - rng.randint(0, 60_000))
    bucket.limits["rpm"] = _Limit(capacity=60_000, period_ms=60_000, tokens=60_000,
                                  consumed=rng.randint(0, 5_000) * 1000)
    bucket.limits["tpm"] = _Limit(capacity=40_000_000, period_ms=60_000, tokens=40_000_000,
                                  consumed=rng.randint(0, 2_000_000) * 1000 + rng.randint(0, 999))
    return bucket


def _client_request(bucket: _Bucket, now_ms: int, rng: random.Random) -> None:
    """One acquire (rpm 1, tpm an estimate) or one refund (tpm only), zae-limiter style."""
    tpm = bucket.limits["tpm"]
    if bucket.outstanding and rng.random() < REFUND_SHARE / (1 - AUDIT_SHARE):
        estimate = bucket.outstanding.pop(rng.randrange(len(bucket.outstanding)))
        refund = rng.randint(1, estimate)
        tpm.tokens += refund
        tpm.consumed -= refund
        return
    amounts = {"rpm": 1000, "tpm": int(rng.lognormvariate(6.5, 1.0)) * 1000 + rng.randint(0, 999)}
    if any(bucket.limits[name].tokens < amount for name, amount in amounts.items()):
        # Slow path: refill every limit to now (moves rf), then debit.
        for limit in bucket.limits.values():
            elapsed = now_ms - bucket.refilled_at
            limit.tokens = min(limit.capacity, limit.tokens + elapsed * limit.capacity
                               // limit.period_ms)
        bucket.refilled_at = max(bucket.refilled_at, now_ms)
    for name, amount in amounts.items():
        bucket.limits[name].tokens -= amount
        bucket.limits[name].consumed += amount
    bucket.outstanding.append(amounts["tpm"])
    del bucket.outstanding[:-8]


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _image(bucket: _Bucket) -> dict[str, Any]:
    image: dict[str, Any] = {
        "PK": _s(f"{NAMESPACE}/BUCKET#{bucket.entity}#{bucket.resource}#0"),
        "SK": _s("#STATE"),
        "entity_id": _s(bucket.entity),
        "resource": _s(bucket.resource),
        "rf": _n(bucket.refilled_at),
        "shard_count": _n(1),
    }
    for name, limit in bucket.limits.items():
        image[f"b_{name}_tk"] = _n(limit.tokens)
        image[f"b_{name}_cp"] = _n(limit.capacity)
        image[f"b_{name}_ra"] = _n(limit.capacity)
        image[f"b_{name}_rp"] = _n(limit.period_ms)
        image[f"b_{name}_tc"] = _n(limit.consumed)
    return image


def _keys(image: dict[str, Any]) -> dict[str, Any]:
    return {"PK": image["PK"], "SK": image["SK"]}


def _ulid(epoch_ms: int, rng: random.Random) -> str:
    value = (epoch_ms << 80) | rng.getrandbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _audit_removal(rng: random.Random, entities: list[str], cumulative: list[float],
                   now_ms: int, sequence: int) -> dict[str, Any]:
    """An audit item's REMOVE: a TTL expiry (90 days on) or, one in ten, a manual delete."""
    entity = entities[bisect.bisect_left(cumulative, rng.random() * cumulative[-1])]
    ttl = rng.random() < 0.9
    age_ms = (90 * 86_400_000 + rng.randint(0, 86_400_000)) if ttl \
        else rng.randint(0, 7 * 86_400_000)
    written_ms = now_ms - age_ms
    event_id = _ulid(written_ms, rng)
    resource = rng.choice(RESOURCES)
    image: dict[str, Any] = {
        "PK": _s(f"{NAMESPACE}/AUDIT#{entity}"),
        "SK": _s(f"#AUDIT#{event_id}"),
        "event_id": _s(event_id),
        "entity_id": _s(entity),
        "action": _s(rng.choice(_ACTIONS)),
        "timestamp": _s(datetime.fromtimestamp(written_ms / 1000, tz=UTC)
                        .strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"),
        "principal": _s(f"arn:aws:sts::123456789012:assumed-role/ops/{rng.randint(1, 40)}"),
        "resource": _s(resource),
        "details": {"M": {"limits": {"L": [
            {"M": {"name": _s("rpm"), "capacity": _n(60), "refill_amount": _n(60),
                   "refill_period_seconds": _n(60), "burst": {"NULL": True}}},
            {"M": {"name": _s("tpm"), "capacity": _n(40_000), "refill_amount": _n(40_000),
                   "refill_period_seconds": _n(60), "burst": {"NULL": True}}},
        ]}, "reason": _s(rng.choice(("onboarding", "plan change", "incident 4711")))}},
        "ttl": _n(written_ms // 1000 + 90 * 86_400),
    }
    return _record("REMOVE", _keys(image), sequence, now_ms, old=image,
                   identity=_TTL_IDENTITY if ttl else None)


def _record(event_name: str, keys: dict[str, Any], sequence: int, now_ms: int, *,
            old: dict[str, Any] | None = None, new: dict[str, Any] | None = None,
            identity: dict[str, str] | None = None) -> dict[str, Any]:
    return lambda_record(event_name, keys=keys, sequence=str(sequence), created=now_ms // 1000,
                         old=old, new=new, user_identity=identity, size_bytes=400,
                         event_id=f"{sequence:x}"[-32:].rjust(32, "0"))
