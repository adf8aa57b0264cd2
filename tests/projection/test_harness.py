"""The convergence proof, small: every fault at once, the dashboard against the truth."""

from __future__ import annotations

import pytest

from local_aws.projection_harness import (
    DASHBOARD,
    compare,
    generate_workload,
    memory_dashboard,
    run,
)
from streamagg_engine.retries import NO_RETRIES
from streamagg_projection import pipeline, processor


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_dashboard_equals_the_projection_of_the_final_source_state(seed: int) -> None:
    workload = generate_workload(seed, 3000, items=120)
    dashboard = memory_dashboard()
    # Rates high enough that every kind of fault happens at this size, whatever the
    # interleaving of the lanes (at 2 % a seed sometimes drew no throttle at all). Without
    # in-invocation retries a refused write fails its records at once, as when the retries
    # run out: Lambda's own retry from the reported record is what this proves.
    result = run(workload, seed=seed, dashboard=dashboard, crash_rate=0.8,
                 unprocessed_rate=0.2, throttle_rate=0.1, lost_response_rate=0.1,
                 retries=NO_RETRIES)
    differences = compare(workload.expected, dashboard.items(DASHBOARD))
    assert not differences, differences
    assert result.given_up == 0
    faults = result.storage_faults
    assert faults["crash"]
    assert faults["throttled"]
    assert faults["unprocessed"]
    assert faults["lost_response"]
    assert result.report.function_errors
    assert result.report.partial_failures
    assert workload.expected  # the history leaves something to project


def test_the_harness_notices_stale_items(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's design (puts only, nothing deleted) must fail the proof."""
    def puts_only(changes: list[processor.Change]) -> list[processor.ItemWrites]:
        found = processor.coalesce(changes)
        for writes in found:
            writes.deletes.clear()
        return [w for w in found if w.puts]

    monkeypatch.setattr(pipeline, "coalesce", puts_only)
    workload = generate_workload(1, 2000, items=80)
    dashboard = memory_dashboard()
    run(workload, seed=1, dashboard=dashboard, crash_rate=0, throttle_rate=0,
        unprocessed_rate=0, lost_response_rate=0)
    assert compare(workload.expected, dashboard.items(DASHBOARD)).stale


def test_the_harness_notices_a_failure_reported_for_the_newest_record_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Why a failed write fails every record of its item: Lambda must retry from the first,
    or a delete an earlier record of the batch needed is never retried."""
    monkeypatch.setattr(processor.ItemWrites, "carried", property(
        lambda self: [(self.records[-1].position, self.records[-1].sequence_number)]))
    workload = generate_workload(2, 3000, items=120)
    dashboard = memory_dashboard()
    run(workload, seed=2, dashboard=dashboard, crash_rate=0, unprocessed_rate=0.3,
        throttle_rate=0.1)
    assert compare(workload.expected, dashboard.items(DASHBOARD)).stale
