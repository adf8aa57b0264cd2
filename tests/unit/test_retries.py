"""The retry policy's arithmetic and the retrier, on a fake clock: no test here sleeps."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from aggregator import handler as aggregator_handler
from streamagg_engine.errors import StoreError
from streamagg_engine.retries import (
    NO_RETRIES,
    Retrier,
    RetryingPort,
    RetryPolicy,
    retrying_ports,
)
from tests.factories import bucket_record

REFUSED = StoreError("throttled", retryable=True, code="ProvisionedThroughputExceededException")
DENIED = StoreError("denied", retryable=False, code="AccessDeniedException")


class Clock:
    """A clock that only moves when paused on, or when a write takes time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


DEFAULT = RetryPolicy()


def retrier(policy: RetryPolicy = DEFAULT, *, budget_s: float = 30.0,
            draw: float = 0.5) -> tuple[Retrier, Clock]:
    clock = Clock()
    paced = replace(policy, pause=clock.pause)
    return Retrier(paced, clock.now + budget_s, clock=clock, draw=lambda: draw), clock


class Flaky:
    """Raises each of ``errors`` in turn, then answers; each attempt takes ``takes_s``."""

    def __init__(self, *errors: BaseException, clock: Clock | None = None,
                 takes_s: float = 0.0) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.clock, self.takes_s = clock, takes_s

    def write(self, value: int, *, times: int = 1) -> int:
        self.calls += 1
        if self.clock is not None:
            self.clock.now += self.takes_s
        if self.errors:
            raise self.errors.pop(0)
        return value * times


# --- the policy: pure arithmetic ------------------------------------------------------

@given(retry=st.integers(1, 10_000), draw=st.floats(0, 1, exclude_max=True),
       base=st.floats(0, 10), cap=st.floats(0, 60))
def test_a_pause_is_drawn_from_a_doubling_range_never_wider_than_the_cap(
        retry: int, draw: float, base: float, cap: float) -> None:
    policy = RetryPolicy(base_delay_s=base, max_delay_s=cap)
    pause = policy.backoff(retry, draw)
    assert 0 <= pause <= min(cap, base * 2.0 ** min(retry - 1, 64))
    assert policy.backoff(retry, 0.0) == 0.0


def test_the_ranges_double_from_the_base_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay_s=0.05, max_delay_s=1.0)
    assert [policy.backoff(retry, 0.999999) for retry in range(1, 7)] == pytest.approx(
        [0.05, 0.1, 0.2, 0.4, 0.8, 1.0], rel=1e-5)


@given(remaining=st.floats(0, 900), now=st.floats(0, 1e6))
def test_the_deadline_keeps_a_margin_of_a_tenth_and_at_least_a_second(
        remaining: float, now: float) -> None:
    deadline = RetryPolicy().deadline(now, remaining)
    assert deadline == pytest.approx(now + remaining - max(1.0, remaining / 10))
    assert deadline <= now + remaining - 1.0


def test_without_a_known_deadline_the_default_budget_bounds_the_retries() -> None:
    assert RetryPolicy(default_budget_s=30).deadline(50.0, None) == 80.0


@given(attempts=st.integers(1, 20), now=st.floats(0, 100), last=st.floats(0, 20),
       deadline=st.floats(0, 200), draw=st.floats(0, 1, exclude_max=True))
def test_another_attempt_is_made_only_within_the_attempts_and_before_the_deadline(
        attempts: int, now: float, last: float, deadline: float, draw: float) -> None:
    policy = RetryPolicy(max_attempts=5)
    pause = policy.next_pause(attempts, now_s=now, last_attempt_s=last, deadline_s=deadline,
                              draw=draw)
    if attempts >= 5:
        assert pause is None
    elif pause is not None:
        assert pause == policy.backoff(attempts, draw)
        assert now + pause + last <= deadline
    else:
        assert now + policy.backoff(attempts, draw) + last > deadline


@pytest.mark.parametrize("bad", [{"max_attempts": 0}, {"base_delay_s": -1},
                                 {"min_margin_s": -0.5}])
def test_a_nonsensical_policy_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        RetryPolicy(**bad)


# --- the retrier: what a write goes through -------------------------------------------

def test_a_refused_write_is_tried_again_after_growing_pauses_until_it_lands() -> None:
    run, clock = retrier(RetryPolicy(base_delay_s=0.1, max_delay_s=5), draw=0.5)
    store = Flaky(REFUSED, REFUSED, REFUSED)
    assert run.call(store.write, 7, times=2) == 14
    assert store.calls == 4
    assert clock.pauses == pytest.approx([0.05, 0.1, 0.2])
    assert run.retries == 3


def test_a_write_refused_on_every_attempt_raises_the_last_refusal(
        caplog: pytest.LogCaptureFixture) -> None:
    run, clock = retrier(RetryPolicy(max_attempts=4))
    last = StoreError("still throttled", retryable=True, code="ThrottlingException")
    store = Flaky(REFUSED, REFUSED, REFUSED, last)
    with caplog.at_level("INFO", logger="streamagg_engine.retries"), \
            pytest.raises(StoreError) as raised:
        run.call(store.write, 1)
    assert raised.value is last
    assert (store.calls, len(clock.pauses), run.retries) == (4, 3, 3)
    (gave_up,) = [r for r in caplog.records if r.message == "refused write not retried again"]
    assert (gave_up.error_code, gave_up.attempts, gave_up.retry_limit) == (  # type: ignore[attr-defined]
        "ThrottlingException", 4, "attempts")


@pytest.mark.parametrize("error", [
    DENIED,
    StoreError("item too large", retryable=False, code="ValidationException"),
    KeyError("a bug is not a refusal"),
])
def test_an_error_a_retry_cannot_fix_is_raised_at_once(error: Exception) -> None:
    run, clock = retrier()
    store = Flaky(error)
    with pytest.raises(type(error)):
        run.call(store.write, 1)
    assert (store.calls, clock.pauses, run.retries) == (1, [], 0)


def test_no_attempt_starts_that_could_not_end_before_the_deadline(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    policy = RetryPolicy(max_attempts=100, base_delay_s=0.2, max_delay_s=0.2,
                         pause=clock.pause)
    run = Retrier(policy, clock.now + 5.0, clock=clock, draw=lambda: 0.5)
    store = Flaky(*[REFUSED] * 100, clock=clock, takes_s=1.0)  # every attempt takes 1 s
    with caplog.at_level("INFO", logger="streamagg_engine.retries"), \
            pytest.raises(StoreError):
        run.call(store.write, 1)
    # 1 s + 0.1 pause, four times, is 4.4 s; a fifth attempt would end at 5.5 s.
    assert store.calls == 4
    assert clock.now <= run.deadline_s
    assert [r.retry_limit for r in caplog.records] == ["deadline"]  # type: ignore[attr-defined]


def test_the_policy_that_turns_retries_off_fails_the_first_refusal() -> None:
    run, clock = retrier(NO_RETRIES)
    store = Flaky(REFUSED)
    with pytest.raises(StoreError):
        run.call(store.write, 1)
    assert (store.calls, clock.pauses) == (1, [])


# --- the ports: every store method retried, nothing else changed ---------------------

@dataclass(frozen=True)
class Stores:
    snapshots: Any
    archive: Any


def test_every_port_of_a_dataclass_retries_and_a_missing_port_stays_missing() -> None:
    run, _ = retrier()
    snapshots = Flaky(REFUSED)
    wrapped = retrying_ports(Stores(snapshots=snapshots, archive=None), run)
    assert isinstance(wrapped, Stores)
    assert wrapped.archive is None
    assert wrapped.snapshots.write(3) == 3
    assert snapshots.calls == 2
    assert wrapped.snapshots.clock is None  # attributes pass through
    assert wrapped.snapshots.write is wrapped.snapshots.write  # looked up once


def test_a_pipeline_with_one_port_gets_that_port_retrying() -> None:
    run, _ = retrier()
    store = Flaky(REFUSED, REFUSED)
    wrapped = retrying_ports(store, run)
    assert isinstance(wrapped, RetryingPort)
    assert wrapped.write(5) == 5
    assert (store.calls, run.retries) == (3, 2)


# --- the entry point: Lambda's remaining time is the deadline --------------------------

class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.aws_request_id = "req-1"
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.mark.parametrize(("remaining_ms", "attempts", "failures"), [
    (60_000, 2, []),                     # time to spare: retried, the batch finishes
    (900, 1, [{"itemIdentifier": "1"}]),  # inside the margin: reported at once
])
def test_the_entry_point_retries_only_while_lambda_leaves_time_for_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        remaining_ms: int, attempts: int, failures: list[dict[str, str]]) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    monkeypatch.setattr(boto3, "client", lambda service, **_: client)
    for name, value in {"ENABLE_REFILL": "false", "ENABLE_ARCHIVAL": "false",
                        "SNAPSHOT_WINDOWS": "hourly"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(aggregator_handler.handler, "runtime", None)
    record = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000})
    record["dynamodb"]["SequenceNumber"] = "1"
    with Stubber(client) as stub:
        stub.add_client_error("update_item", "ProvisionedThroughputExceededException")
        if attempts > 1:
            stub.add_response("update_item", {})
        capsys.readouterr()
        response = aggregator_handler.handler({"Records": [record]}, Context(remaining_ms))
        stub.assert_no_pending_responses()
    assert response == {"batchItemFailures": failures}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (completed,) = [line for line in lines if line.get("message") == "batch completed"]
    assert completed["write_retries"] == attempts - 1
    assert lines[-1]["WriteRetries"] == attempts - 1  # the metrics line
