"""The usage aggregator's batch metrics, written by :func:`streamagg_engine.metrics.emf_line`.

The construct's alarms and dashboard read them under :data:`NAMESPACE` with the single
dimension ``FunctionName``.
"""

from __future__ import annotations

from collections.abc import Mapping

NAMESPACE = "StreamAggregator"
"""Kept from the first release, so deployed alarms and dashboards keep reading it."""

COUNTS: Mapping[str, str] = {
    # metric name -> BatchResult field
    "RecordsProcessed": "records",
    "RecordsSkipped": "skipped_malformed",
    "RecordsCounted": "counted_records",
    "SnapshotWrites": "snapshot_writes",
    "DuplicatesIgnored": "duplicate_contributions",
    "GapsReconciled": "reconciled_gaps",
    "GapsUnplaced": "unplaced_gaps",
    "RefillsWritten": "refills_written",
    "RefillsLostRace": "refills_lost_race",
    "RefillsFailed": "refills_failed",
    "ShardsDoubled": "shards_doubled",
    "ShardsPropagated": "shards_propagated",
    "ArchivedRecords": "archived_records",
    "FailedWrites": "failed_writes",
    "UnknownSchemaVersions": "unknown_schema_versions",
}
