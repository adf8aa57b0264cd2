"""The proof: exact counts and a complete, duplicate-free archive under every fault,
including batches given up to the DLQ while newer records of the same buckets go on (the
recovery replays their ranges at the end, as ``python -m redrive`` does).

``make test`` runs 5 seeds x ``PROOF_RECORDS`` records (default 6,000: 30,000 in all, every
fault kind in every seed);
``make prove`` runs 5 x 100,000.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest

from aggregator import stores
from aggregator.chain import CountedRange, reconcile
from aggregator.stores import SnapshotStore
from local_aws.harness import TABLE, compare, generate_workload, memory_stores, run

RECORDS = int(os.environ.get("PROOF_RECORDS", "6000"))


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_counts_equal_the_ground_truth_under_storage_and_delivery_faults(seed: int) -> None:
    workload = generate_workload(seed, RECORDS)
    ddb, s3 = memory_stores()
    # Rates above make prove's, so that every fault happens in each seed of this size.
    result = run(workload, seed=seed, ddb=ddb, s3=s3, give_up_rate=0.08, crash_rate=0.06)
    differences = compare(workload, ddb.items(TABLE), s3.objects.values())
    assert not differences, differences
    # The faults really happened, so the equality above means something.
    assert result.storage_faults["crash"] > 0
    assert result.storage_faults["throttled"] > 0
    assert result.storage_faults["lost_response"] > 0
    assert result.report.function_errors > 0
    assert result.given_up >= 0.01 * len(result.report.batch_sizes)
    assert result.recovered >= result.given_up_records


def test_the_proof_fails_when_a_late_replay_is_taken_for_a_duplicate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a plain watermark (all up to the newest position counted, no counters read),
    the given-up ranges the mapping went on from stay missing after the recovery."""
    def watermark_only(run: Any, stored: CountedRange | None, scale: int) -> Any:
        if stored is None:
            return reconcile(run, None, scale)
        newer = [link for link in run if link.position > stored.last_position]
        return reconcile(newer, replace(stored, last_after=None), scale)

    monkeypatch.setattr(stores, "reconcile", watermark_only)
    workload = generate_workload(9, 3000)
    ddb, s3 = memory_stores()
    result = run(workload, seed=9, ddb=ddb, s3=s3, give_up_rate=0.05)
    assert result.given_up > 0
    assert compare(workload, ddb.items(TABLE), s3.objects.values()).snapshots


def test_the_proof_fails_when_redeliveries_are_added_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the counted-range condition the same faults must show a difference."""
    original = SnapshotStore._request

    def unconditional(self: SnapshotStore, key: Any, plans: Any) -> dict[str, Any]:
        request = original(self, key, plans)
        request.pop("ConditionExpression")
        return request

    monkeypatch.setattr(SnapshotStore, "_request", unconditional)
    workload = generate_workload(9, 3000)
    ddb, s3 = memory_stores()
    run(workload, seed=9, ddb=ddb, s3=s3, give_up_rate=0.0)
    assert compare(workload, ddb.items(TABLE), s3.objects.values()).snapshots
