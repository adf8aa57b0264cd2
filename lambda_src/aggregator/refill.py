"""Proactive token-bucket refill for zae-limiter buckets (pure: the clock is passed in).

zae-limiter's fast path debits a bucket without refilling it, so a busy bucket runs dry
and every request falls back to the slow read-refill-write path. After a batch, the
aggregator tops up the buckets whose balance, refilled to now, cannot cover what the
batch saw them consume. The write is one ``UpdateItem`` per bucket for all its limits,
locked on ``rf`` (the refill time, epoch ms), so it never races the slow path into a
double refill; it ``ADD``s deltas, so it commutes with concurrent fast-path debits.

The math is zae-limiter's: ``add = elapsed * ra // rp`` millitokens, capped at the
shard's ceiling. Buckets using features whose refill rules are more than a drip
(schedules, quotas, duration windows, disabled or bypassed items) are left to the
client's slow path, which always refills them correctly itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from streamagg_engine.ddb_json import Image, get_integer, get_string
from streamagg_engine.errors import MalformedRecordError
from streamagg_engine.records import StreamRecord

_PREFIX = "b_"
_UNSUPPORTED_ITEM = ("sched", "rsched", "vu", "disabled", "bypass")
_UNSUPPORTED_LIMIT = ("sched", "rsched", "ws", "rsa", "gc", "tu", "soft")


@dataclass(slots=True)
class LimitState:
    """One limit of a bucket as read (never changed; not frozen, as it is read per bucket)."""

    tokens: int
    capacity: int
    refill_amount: int
    refill_period_ms: int


@dataclass(slots=True)
class BucketState:
    """A bucket as its newest record in the batch left it, plus the batch's consumption."""

    pk: str
    sk: str
    refilled_at: int
    shard_count: int
    limits: dict[str, LimitState]
    consumed: dict[str, int] = field(default_factory=dict)
    """Net millitokens consumed per limit over the batch (refunds subtract)."""
    unsupported: str = ""


@dataclass(frozen=True, slots=True)
class RefillPlan:
    pk: str
    sk: str
    expected_refilled_at: int
    refilled_at: int
    deltas: Mapping[str, int]
    """Millitokens to ADD per limit (only positive)."""
    read_tokens: Mapping[str, int]
    """The balance each delta was computed from: the write is pinned on ``tk <= read``."""


def drip(tokens: int, *, refilled_at: int, now_ms: int, ceiling: int, amount: int,
         period_ms: int) -> int:
    """The balance after refilling from ``refilled_at`` to ``now_ms``, capped at the ceiling.

    Debt (a negative balance) is refilled like any other and never rounded up to zero.
    """
    elapsed = now_ms - refilled_at
    if elapsed <= 0 or amount <= 0 or period_ms <= 0:
        return min(ceiling, tokens)
    return min(ceiling, tokens + elapsed * amount // period_ms)


def bucket_state(record: StreamRecord) -> BucketState | None:
    """A bucket's refill inputs from a record's NewImage; None if it has no limits."""
    image = record.new_image
    if image is None or record.event_name == "REMOVE":
        return None
    refilled_at = get_integer(image, "rf")
    if refilled_at is None:
        raise MalformedRecordError("bucket has no rf (refill time)")
    layout = _layout(image)
    limits = {}
    for name, (tk, cp, ra, rp) in layout.limits:
        tokens, capacity = get_integer(image, tk), get_integer(image, cp)
        amount, period = get_integer(image, ra), get_integer(image, rp)
        if tokens is not None and capacity is not None and amount is not None \
                and period is not None:
            limits[name] = LimitState(tokens, capacity, amount, period)
    # Positional, in field order: pk, sk, refilled_at, shard_count, limits, consumed,
    # unsupported (one per bucket and batch; keywords cost a third more).
    return BucketState(
        record.partition_key, get_string(record.keys, "SK") or "", refilled_at,
        max(1, get_integer(image, "shard_count") or 1), limits, {}, layout.unsupported,
    )


class _Layout(NamedTuple):
    limits: tuple[tuple[str, tuple[str, str, str, str]], ...]
    """Each limit's name and the attributes of its ``tk``, ``cp``, ``ra`` and ``rp``."""
    unsupported: str
    """The first attribute of a feature the refill leaves to the client, or empty."""


_LAYOUTS: dict[tuple[str, ...], _Layout] = {}
_MAX_LAYOUTS = 256


def _layout(image: Image) -> _Layout:
    """Where an image keeps its limits, worked out once per attribute-name *shape*.

    Every bucket item of a table has the same few attribute names, so scanning and
    splitting them for each bucket of each batch is wasted work; only values are read.
    """
    shape = tuple(image)
    found = _LAYOUTS.get(shape)
    if found is None:
        if len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.clear()
        names = dict.fromkeys(
            a[len(_PREFIX):-3] for a in shape if a.startswith(_PREFIX) and a.endswith("_tk")
        )
        unsupported = next((a for a in _UNSUPPORTED_ITEM if a in image), "") or next(
            (a for a in shape if a.startswith(_PREFIX)
             and a.rpartition("_")[2] in _UNSUPPORTED_LIMIT), ""
        )
        found = _LAYOUTS[shape] = _Layout(
            tuple((name, (f"{_PREFIX}{name}_tk", f"{_PREFIX}{name}_cp",
                          f"{_PREFIX}{name}_ra", f"{_PREFIX}{name}_rp")) for name in names),
            unsupported,
        )
    return found


def merge_states(states: Iterable[tuple[BucketState, Mapping[str, int]]]) -> list[BucketState]:
    """Last state per bucket wins; consumption accumulates. States come in stream order."""
    merged: dict[tuple[str, str], BucketState] = {}
    for state, consumed in states:
        key = (state.pk, state.sk)
        previous = merged.get(key)
        if previous is not None:
            for name, amount in previous.consumed.items():
                state.consumed[name] = state.consumed.get(name, 0) + amount
        for name, amount in consumed.items():
            state.consumed[name] = state.consumed.get(name, 0) + amount
        merged[key] = state
    return list(merged.values())


def plan_refill(state: BucketState, now_ms: int) -> RefillPlan | None:
    """The refill a bucket needs now, or None.

    A limit needs one when its balance refilled to now is below what the batch consumed
    (the estimate of the next batch's demand). When the write happens, every limit gets
    its due drip, because moving ``rf`` forfeits the accrual of any limit left out.
    """
    if state.unsupported or not state.limits:
        return None
    deltas: dict[str, int] = {}
    needed = False
    for name, limit in state.limits.items():
        ceiling = limit.capacity // state.shard_count
        amount = limit.refill_amount // state.shard_count
        projected = drip(limit.tokens, refilled_at=state.refilled_at, now_ms=now_ms,
                         ceiling=ceiling, amount=amount, period_ms=limit.refill_period_ms)
        delta = projected - limit.tokens
        if delta <= 0:
            continue
        deltas[name] = delta
        if projected < max(0, state.consumed.get(name, 0)):
            needed = True
    if not needed:
        return None
    return RefillPlan(
        pk=state.pk,
        sk=state.sk,
        expected_refilled_at=state.refilled_at,
        refilled_at=max(now_ms, state.refilled_at),
        deltas=deltas,
        read_tokens={name: state.limits[name].tokens for name in deltas},
    )
