from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from aggregator.refill import BucketState, LimitState, bucket_state, drip, merge_states, plan_refill
from streamagg_engine.records import parse_record
from tests.factories import bucket_record, n

NOW = 1_700_000_060_000  # one minute after the factories' rf


def state(tokens: dict[str, int], *, consumed: dict[str, int], rf: int = 1_700_000_000_000,
          capacity: int = 100_000, amount: int = 100_000, period: int = 60_000) -> BucketState:
    return BucketState(
        pk="ns/BUCKET#u#r#0", sk="#STATE", refilled_at=rf, shard_count=1,
        limits={name: LimitState(t, capacity, amount, period) for name, t in tokens.items()},
        consumed=dict(consumed),
    )


def test_drip_follows_zae_limiters_math_and_caps_at_the_ceiling() -> None:
    assert drip(0, refilled_at=0, now_ms=30_000, ceiling=100_000, amount=100_000,
                period_ms=60_000) == 50_000
    assert drip(90_000, refilled_at=0, now_ms=30_000, ceiling=100_000, amount=100_000,
                period_ms=60_000) == 100_000
    assert drip(-5_000, refilled_at=0, now_ms=0, ceiling=100_000, amount=100_000,
                period_ms=60_000) == -5_000


@given(st.integers(-10**6, 10**6), st.integers(0, 10**7), st.integers(0, 10**7))
def test_drip_never_exceeds_the_ceiling_nor_lowers_the_balance(
    tokens: int, elapsed: int, amount: int
) -> None:
    after = drip(tokens, refilled_at=0, now_ms=elapsed, ceiling=10**6, amount=amount,
                 period_ms=60_000)
    assert after <= max(tokens, 10**6)
    assert after >= min(tokens, 10**6)


def test_a_bucket_that_cannot_cover_the_batch_demand_is_refilled() -> None:
    plan = plan_refill(state({"rpm": 0}, consumed={"rpm": 200_000}), NOW)
    assert plan is not None
    assert plan.deltas == {"rpm": 100_000}
    assert plan.expected_refilled_at == 1_700_000_000_000
    assert plan.refilled_at == NOW
    assert plan.read_tokens == {"rpm": 0}


def test_refill_is_skipped_when_projected_tokens_cover_the_demand() -> None:
    assert plan_refill(state({"rpm": 0}, consumed={"rpm": 100_000}), NOW) is None


def test_refill_is_skipped_when_no_time_has_passed_or_the_bucket_is_full() -> None:
    assert plan_refill(state({"rpm": 0}, consumed={"rpm": 10**9}, rf=NOW), NOW) is None
    assert plan_refill(state({"rpm": 100_000}, consumed={"rpm": 10**9}), NOW) is None


def test_refunds_never_trigger_a_refill() -> None:
    assert plan_refill(state({"rpm": -50_000}, consumed={"rpm": -10**9}), NOW) is None


def test_all_limits_needing_refill_go_into_one_plan_and_others_get_their_drip() -> None:
    plan = plan_refill(state({"rpm": 0, "tpm": 0, "wcu": 50_000},
                             consumed={"rpm": 10**9, "tpm": 10**9}), NOW)
    assert plan is not None
    assert plan.deltas == {"rpm": 100_000, "tpm": 100_000, "wcu": 50_000}


def test_buckets_with_schedules_or_quotas_are_left_to_the_client() -> None:
    raw = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 10**6}, tk={"rpm": 0},
                        extra={"b_rpm_ws": n(1)})
    found = bucket_state(parse_record(raw))
    assert found is not None
    assert found.unsupported == "b_rpm_ws"
    found.consumed["rpm"] = 10**9
    assert plan_refill(found, NOW) is None


def test_merging_keeps_the_last_image_and_accumulates_consumption() -> None:
    def record(tk: int, rf: int) -> Any:
        raw = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1}, tk={"rpm": tk}, rf=rf)
        return bucket_state(parse_record(raw))

    merged = merge_states([(record(500, 1), {"rpm": 10}), (record(300, 2), {"rpm": 5}),
                           (record(200, 3), {"rpm": -3})])
    assert len(merged) == 1
    assert merged[0].refilled_at == 3
    assert merged[0].limits["rpm"].tokens == 200
    assert merged[0].consumed == {"rpm": 12}


def test_each_image_is_read_by_its_own_attributes_when_bucket_shapes_differ() -> None:
    # Layouts are cached per attribute-name shape: a bucket that gains a limit or a
    # schedule between records must be read as it is now, not as it was.
    def read(tc: dict[str, int], tk: dict[str, int], **extra: Any) -> BucketState:
        found = bucket_state(parse_record(bucket_record("MODIFY", {"rpm": 0}, tc, tk=tk,
                                                        extra=extra)))
        assert found is not None
        return found

    one = read({"rpm": 1}, {"rpm": 7})
    two = read({"rpm": 1, "tpm": 2}, {"rpm": 8, "tpm": 9})
    scheduled = read({"rpm": 1}, {"rpm": 7}, b_rpm_sched=n(1))
    again = read({"rpm": 1}, {"rpm": 6})
    assert {name: limit.tokens for name, limit in one.limits.items()} == {"rpm": 7}
    assert {name: limit.tokens for name, limit in two.limits.items()} == {"rpm": 8, "tpm": 9}
    assert (one.unsupported, scheduled.unsupported, again.unsupported) == ("", "b_rpm_sched", "")
    assert again.limits["rpm"].tokens == 6
