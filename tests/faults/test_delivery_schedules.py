"""Property: any delivery schedule that keeps per-key order and repeats records
gives the same final table as one clean delivery (and the ground truth)."""

from __future__ import annotations

import contextlib
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.config import AggregatorConfig
from aggregator.handler import build_runtime, handle
from local_aws.harness import BUCKET, TABLE, WINDOWS, compare, generate_workload, memory_stores

WORKLOAD = generate_workload(3, 40, entities=3, hours=26)
CONFIG = AggregatorConfig(table_name=TABLE, archive_bucket_name=BUCKET,
                          snapshot_windows=WINDOWS, enable_refill=False, max_workers=2)


@st.composite
def schedules(draw: st.DrawFn, size: int = len(WORKLOAD.records)) -> list[tuple[int, int]]:
    """Slices of the stream: each starts at or before everything delivered so far
    (a retry, a replay, a bisected half) and the last one reaches the end."""
    frontier, slices = 0, []
    for _ in range(draw(st.integers(1, 25))):
        start = draw(st.integers(0, frontier))
        end = draw(st.integers(start + 1, min(size, start + 12)))
        slices.append((start, end))
        frontier = max(frontier, end)
        if frontier == size:
            break
    while frontier < size:
        end = min(size, frontier + draw(st.integers(1, 12)))
        slices.append((frontier, end))
        frontier = end
    return slices


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules())
def test_any_order_keeping_schedule_with_repeats_gives_the_same_table(
    schedule: list[tuple[int, int]],
) -> None:
    ddb, s3 = memory_stores()
    runtime = build_runtime(CONFIG.to_env(), dynamodb=ddb, s3=s3)
    with contextlib.redirect_stdout(io.StringIO()):
        for start, end in schedule:
            response = handle({"Records": WORKLOAD.records[start:end]}, runtime, now_ms=0)
            assert response == {"batchItemFailures": []}
    runtime.pool.shutdown()
    assert not compare(WORKLOAD, ddb.items(TABLE), s3.objects.values())
