"""The event pipeline's batch metrics, written by :func:`aggregator.metrics.emf_line`.

``RecordsSkipped`` and ``FailedWrites`` keep the names the usage pipeline's alarms read,
so a runbook or dashboard works the same for both.
"""

from __future__ import annotations

from collections.abc import Mapping

COUNTS: Mapping[str, str] = {
    # metric name -> BatchResult field
    "RecordsProcessed": "records",
    "RecordsSkipped": "skipped_malformed",
    "UnknownExperiments": "unknown_experiments",
    "EventsCounted": "counted_events",
    "DuplicatesIgnored": "already_counted",
    "DuplicatesInBatch": "duplicates_in_batch",
    "CounterTransactions": "transactions",
    "ArchivedEvents": "archived_events",
    "FailedWrites": "failed_writes",
}
