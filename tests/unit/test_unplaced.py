"""Records lost across an hour: the daily item counts them from the bucket's counters at
once, the hourly ones cannot; the batch says how many tokens the hours lack, and a replay
of the lost records places them without counting anything twice."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from aggregator.config import AggregatorConfig
from aggregator.pipeline import Stores, process_batch
from aggregator.processor import SnapshotKey
from aggregator.stores import SnapshotStore
from aggregator.unplaced import unplaced
from local_aws.memory import MemoryDynamoDB, table_definition
from streamagg_engine.windows import Window
from tests.factories import bucket_record

CONFIG = AggregatorConfig(table_name="usage", snapshot_windows=(Window.HOURLY, Window.DAILY))
LATER = 1_700_002_800.0
"""2023-11-14T23:00:00Z; the records below fall at 21:59, 21:59:30, 22:10 and 22:20."""


def hourly(key: str) -> SnapshotKey:
    return SnapshotKey("ns", "user-1", "gpt-4", Window.HOURLY, key)


def daily(key: str) -> SnapshotKey:
    return SnapshotKey("ns", "user-1", "gpt-4", Window.DAILY, key)


def test_a_daily_gap_the_hours_did_not_count_is_unplaced() -> None:
    found = unplaced([
        (daily("2023-11-14T00:00:00Z"), {"src": {"tpm": 7, "rpm": 2}}),
        (hourly("2023-11-14T22:00:00Z"), {"src": {"tpm": 3}}),
        (hourly("2023-11-15T00:00:00Z"), {"src": {"tpm": 100}}),  # another day
    ], [Window.HOURLY, Window.DAILY])
    assert [(f.coarse.window, f.finer, f.tokens) for f in found] == [
        (Window.DAILY, Window.HOURLY, {"tpm": 4, "rpm": 2})]


def test_gaps_the_finer_windows_counted_too_leave_nothing_unplaced() -> None:
    assert unplaced([(daily("2023-11-14T00:00:00Z"), {"src": {"tpm": 3}}),
                     (hourly("2023-11-14T22:00:00Z"), {"src": {"tpm": 3}})],
                    [Window.HOURLY, Window.DAILY]) == []


def records() -> list[dict[str, Any]]:
    """One bucket, four records: two in the 21:00 hour, two in the 22:00 hour, taking 1, 2,
    3 and 4 tokens."""
    times = [LATER - 3660, LATER - 3630, LATER - 3000, LATER - 2400]
    out, value = [], 0
    for i, created in enumerate(times):
        out.append(bucket_record("MODIFY", {"tpm": value}, {"tpm": value + (i + 1) * 1000},
                                 created=created, sequence=str(100 + i)))
        value += (i + 1) * 1000
    return out


def tokens(ddb: MemoryDynamoDB) -> dict[tuple[str, str], tuple[int, int]]:
    return {(item["window"]["S"], item["window_start"]["S"]):
            (int(item["tpm"]["N"]), int(item["total_events"]["N"]))
            for item in ddb.items("usage") if "tpm" in item}


def test_records_lost_across_an_hour_are_reported_then_placed_by_their_replay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ddb = MemoryDynamoDB()
    ddb.create_table(**table_definition("usage", "PK", "SK"))
    client: Any = ddb  # the in-memory table answers as a DynamoDB client does
    stores = Stores(snapshots=SnapshotStore(client, CONFIG), buckets=None, archive=None)
    first, lost_a, lost_b, last = records()
    with ThreadPoolExecutor(2) as pool, caplog.at_level(logging.WARNING):
        def batch(raws: list[dict[str, Any]]) -> Any:
            return process_batch(raws, config=CONFIG, stores=stores, pool=pool, now_ms=0)

        batch([first])
        result = batch([last])  # the two between were given up
        assert (result.reconciled_gaps, result.unplaced_gaps) == (1, 1)
        assert tokens(ddb) == {
            ("hourly", "2023-11-14T21:00:00Z"): (1, 1),
            ("hourly", "2023-11-14T22:00:00Z"): (4, 1),
            ("daily", "2023-11-14T00:00:00Z"): (10, 2),  # 1 + (2 + 3) + 4 tokens
        }
        (line,) = [r for r in caplog.records if getattr(r, "kind", "") == "unplaced"]
        assert (line.window, line.finer_window, line.tokens) == (  # type: ignore[attr-defined]
            "daily", "hourly", {"tpm": 5})

        replay = batch([lost_a, lost_b])  # the redrive
        assert replay.unplaced_gaps == 0
        batch([first, lost_a, lost_b, last])  # and again
    assert tokens(ddb) == {
        ("hourly", "2023-11-14T21:00:00Z"): (3, 2),
        ("hourly", "2023-11-14T22:00:00Z"): (7, 2),
        ("daily", "2023-11-14T00:00:00Z"): (10, 4),
    }
