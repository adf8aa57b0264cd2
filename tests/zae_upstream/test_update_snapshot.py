"""Ports of zae-limiter 0.17's ``integration/test_update_snapshot.py`` to our handler.

Upstream calls ``update_snapshot`` with a hand-made ``ConsumptionDelta`` against a real
table and reads the raw item back. Here each delta is the MODIFY record of a 0.9+ bucket
whose cumulative counter moved by that much, sent through our Lambda entry point onto a
zae-limiter table on moto; the item is read back raw (as upstream does) and with
zae-limiter's reader. All five upstream tests are ported; one asserted deviation: the
sort key carries the window (``#USAGE#{resource}#{window_key}#{window}``), so an hour
and the day it starts never share an item.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streamagg_engine.windows import Window
from tests.zae_upstream import support
from tests.zae_upstream.support import Zae, bucket_image, stream_record

zae_moto, zae_table, zae = support.zae_moto, support.zae_table, support.zae


def ms(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def deltas(zae: Zae, entity: str, moves: list[tuple[str, int, int]],
           windows: tuple[Window, ...] = (Window.HOURLY,)) -> None:
    """Upstream's deltas, ``(limit, millitokens, timestamp_ms)``, as one bucket's records."""
    totals = {limit: 0 for limit, _, _ in moves}
    records = []
    for limit, amount, at in moves:
        old = bucket_image(zae.ns, entity, "gpt-4", dict(totals))
        totals[limit] += amount
        new = bucket_image(zae.ns, entity, "gpt-4", dict(totals))
        records.append(stream_record(old, new, created_ms=at))
    assert zae.invoke_handler(records, snapshot_windows=windows) == {"batchItemFailures": []}


def stored(zae: Zae, entity: str, window_key: str, window: str) -> dict[str, Any]:
    item = zae.item(f"{zae.ns}/ENTITY#{entity}", f"#USAGE#gpt-4#{window_key}#{window}")
    assert item is not None
    return item


def number(item: dict[str, Any], name: str) -> int:
    return int(item[name]["N"])


def test_first_snapshot_creates_item(zae: Zae) -> None:
    """Upstream: integration/test_update_snapshot.py::TestUpdateSnapshotIntegration::test_first_snapshot_creates_item.

    Deviation: the sort key ends in ``#hourly`` (see the module docstring)."""  # noqa: E501
    deltas(zae, "test-entity-1", [("tpm", 5_000_000, ms(2024, 1, 1, 14, 30))])
    item = stored(zae, "test-entity-1", "2024-01-01T14:00:00Z", "hourly")
    assert (item["entity_id"]["S"], item["resource"]["S"], item["window"]["S"],
            item["window_start"]["S"]) == ("test-entity-1", "gpt-4", "hourly",
                                           "2024-01-01T14:00:00Z")
    assert (number(item, "tpm"), number(item, "total_events")) == (5000, 1)
    assert item["GSI2PK"]["S"] == f"{zae.ns}/RESOURCE#gpt-4"
    assert "ttl" in item
    (snap,) = zae.snapshots("test-entity-1")
    assert (snap.counters, snap.total_events) == ({"tpm": 5000}, 1)


def test_second_snapshot_updates_counters(zae: Zae) -> None:
    """Upstream: integration/test_update_snapshot.py::TestUpdateSnapshotIntegration::test_second_snapshot_updates_counters."""  # noqa: E501
    deltas(zae, "test-entity-2", [("rpm", 1_000_000, ms(2024, 1, 1, 15, 30)),
                                  ("rpm", 2_000_000, ms(2024, 1, 1, 15, 45))])
    item = stored(zae, "test-entity-2", "2024-01-01T15:00:00Z", "hourly")
    assert (number(item, "rpm"), number(item, "total_events")) == (3000, 2)


def test_multiple_limit_types_same_snapshot(zae: Zae) -> None:
    """Upstream: integration/test_update_snapshot.py::TestUpdateSnapshotIntegration::test_multiple_limit_types_same_snapshot."""  # noqa: E501
    at = ms(2024, 1, 1, 16, 0)
    deltas(zae, "test-entity-3", [("tpm", 10_000_000, at), ("rpm", 1_000_000, at + 1000)])
    item = stored(zae, "test-entity-3", "2024-01-01T16:00:00Z", "hourly")
    assert (number(item, "tpm"), number(item, "rpm"), number(item, "total_events")) == \
        (10_000, 1000, 2)


def test_negative_delta_decrements_counter(zae: Zae) -> None:
    """Upstream: integration/test_update_snapshot.py::TestUpdateSnapshotIntegration::test_negative_delta_decrements_counter."""  # noqa: E501
    at = ms(2024, 1, 1, 17, 0)
    deltas(zae, "test-entity-4", [("rph", 5_000_000, at), ("rph", -2_000_000, at + 1000)])
    item = stored(zae, "test-entity-4", "2024-01-01T17:00:00Z", "hourly")
    assert (number(item, "rph"), number(item, "total_events")) == (3000, 2)


def test_daily_window(zae: Zae) -> None:
    """Upstream: integration/test_update_snapshot.py::TestUpdateSnapshotIntegration::test_daily_window."""  # noqa: E501
    deltas(zae, "test-entity-5", [("daily_limit", 1_000_000, ms(2024, 1, 15, 14, 30))],
           windows=(Window.DAILY,))
    item = stored(zae, "test-entity-5", "2024-01-15T00:00:00Z", "daily")
    assert (item["window"]["S"], item["window_start"]["S"]) == ("daily", "2024-01-15T00:00:00Z")
    (snap,) = zae.snapshots("test-entity-5", window="daily")
    assert snap.counters == {"daily_limit": 1000}
