"""The exactly-once proof at small size: faults everywhere, counts exact; and it can fail."""

from __future__ import annotations

from typing import Any

import pytest

from local_aws import events_harness
from local_aws.events_harness import run_seed
from local_aws.memory import MemoryDynamoDB
from streamagg_engine.retries import NO_RETRIES


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_counts_sums_and_users_are_exact_under_faults_and_parallel_lanes(seed: int) -> None:
    # Without in-invocation retries a refused write fails its records at once, as when the
    # retries run out: Lambda's own retry from the reported record is what this proves.
    workload, result, differences, _ = run_seed(seed, 3000, crash_rate=0.1, retries=NO_RETRIES)
    assert not differences, differences
    assert result.given_up == 0
    faults = result.storage_faults
    assert faults.get("throttled", 0) > 0
    assert faults.get("lost_response", 0) > 0
    assert faults.get("crash", 0) > 0
    assert result.report.function_errors > 0  # crashed invocations were retried
    assert result.report.partial_failures > 0
    assert workload.malformed > 0
    assert workload.producer_duplicates > 0


class _NoConditions(MemoryDynamoDB):
    """A store that forgets marker conditions: what double counting looks like."""

    def transact_write_items(self, *, TransactItems: Any, **request: Any) -> dict[str, Any]:  # noqa: N803
        stripped = [{kind: {k: v for k, v in action.items() if k != "ConditionExpression"}}
                    for item in TransactItems for kind, action in item.items()]
        return super().transact_write_items(TransactItems=stripped, **request)


def test_the_proof_catches_double_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_harness, "MemoryDynamoDB", _NoConditions)
    _, _, differences, _ = run_seed(5, 1500)
    assert differences.counters
