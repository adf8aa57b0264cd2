"""Ports of zae-limiter 0.17's ``unit/test_soft_limits.py``, the overdraw classes, to our
handler: ``TestUsageSnapshotOverdrawn`` and ``TestAggregatorOverdrawSignal``.

A soft limit (``b_{name}_soft`` stamped on the bucket) is metered, never enforced; a debit
that leaves its balance below zero is an *overdraw*, counted in the snapshot as
``{limit}#od``, which zae-limiter's reader returns as ``UsageSnapshot.overdrawn``.

Ported: 3 upstream tests (6 cases), all passing; 1 asserted deviation (one write per
snapshot item per batch, not one per record and limit). Added: a redelivered batch
leaves the overdraw count as it was.

Upstream tests NOT ported, and why: the other classes of the file (TestLimitModel,
TestTryConsume, TestStatus, TestConfigStorage, TestFastPath, TestSlowPath, TestEntitySync,
TestResourceAndSystemFanout, TestStampsExpire, TestRejectedPassFixesStamps, TestVersionGate,
TestRejectionCacheAndAvailability, TestSoftQuota, TestOverrideAgainstAStamp,
TestSoftLimitAddedLater, TestStampFallbacks) test zae-limiter's client, which writes the
stamps; the aggregator only reads them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.zae_upstream import support
from tests.zae_upstream.support import LimitState, Zae, bucket_image, logged, stream_record

zae_moto, zae_table, zae = support.zae_moto, support.zae_table, support.zae


def record(zae: Zae, *, soft: bool, old_tc: int, new_tc: int, tk: int) -> dict[str, Any]:
    """Upstream's ``TestAggregatorOverdrawSignal._record``, a 0.9+ bucket of ``user-1``."""
    def image(tc: int) -> dict[str, Any]:
        return bucket_image(zae.ns, "user-1", "llm", {"tpm": LimitState(tc=tc, tk=tk, soft=soft)})
    return stream_record(image(old_tc), image(new_tc))


def test_deserialize_splits_the_counter(zae: Zae) -> None:
    """Upstream: unit/test_soft_limits.py::TestUsageSnapshotOverdrawn::test_deserialize_splits_the_counter.

    As behaviour: what our handler writes, the reader splits into counters and overdrawn."""  # noqa: E501
    response = zae.invoke_handler([record(zae, soft=True, old_tc=0, new_tc=500_000, tk=-1)])
    assert response == {"batchItemFailures": []}
    (snap,) = zae.snapshots("user-1", window="hourly")
    assert (snap.counters, snap.overdrawn) == ({"tpm": 500}, {"tpm": 1})


@pytest.mark.parametrize(
    ("soft", "old_tc", "new_tc", "tk", "expected"),
    [
        (True, 0, 5_000_000, -4_000_000, True),
        (True, 0, 5_000_000, 1_000, False),  # still in credit
        (True, 5_000_000, 0, -4_000_000, False),  # a refund, not a debit
        (False, 0, 5_000_000, -4_000_000, False),  # hard debt (adjust) is not overdraw
    ],
)
def test_extract_deltas_flags_a_debit_into_debt(
    zae: Zae, soft: bool, old_tc: int, new_tc: int, tk: int, expected: bool,
) -> None:
    """Upstream: unit/test_soft_limits.py::TestAggregatorOverdrawSignal::test_extract_deltas_flags_a_debit_into_debt."""  # noqa: E501
    zae.invoke_handler([record(zae, soft=soft, old_tc=old_tc, new_tc=new_tc, tk=tk)])
    (snap,) = zae.snapshots("user-1", window="hourly")
    assert snap.overdrawn == ({"tpm": 1} if expected else {})


def three_records(zae: Zae) -> list[dict[str, Any]]:
    """Upstream's hard, soft, soft debits, as one bucket's chain (1,000 + 5,000 + 5,000)."""
    return [record(zae, soft=False, old_tc=0, new_tc=1_000_000, tk=0),
            record(zae, soft=True, old_tc=1_000_000, new_tc=6_000_000, tk=-4_000_000),
            record(zae, soft=True, old_tc=6_000_000, new_tc=11_000_000, tk=-4_000_000)]


def test_the_counter_rides_in_the_same_update(
    zae: Zae, capsys: pytest.CaptureFixture[str],
) -> None:
    """Upstream: unit/test_soft_limits.py::TestAggregatorOverdrawSignal::test_the_counter_rides_in_the_same_update.

    Deviation: upstream writes once per record and limit (3 calls); ours once per snapshot
    item per batch, the overdraw count in the same request (1 write, hourly only)."""  # noqa: E501
    zae.invoke_handler(three_records(zae), snapshot_windows=zae.config.snapshot_windows[:1])
    (snap,) = zae.snapshots("user-1")
    assert (snap.counters, snap.overdrawn) == ({"tpm": 11_000}, {"tpm": 2})
    (done,) = logged(capsys, "batch completed")
    assert done["snapshot_writes"] == 1


def test_a_redelivered_batch_counts_each_overdraw_once(zae: Zae) -> None:
    """Not upstream (its ADD counts a redelivery twice): our counted ranges cover ``#od``."""
    batch = three_records(zae)
    zae.invoke_handler(batch)
    zae.invoke_handler(batch)
    zae.invoke_handler(batch[1:])
    for window in ("hourly", "daily"):
        (snap,) = zae.snapshots("user-1", window=window)
        assert (snap.counters, snap.overdrawn, snap.total_events) == \
            ({"tpm": 11_000}, {"tpm": 2}, 3)
