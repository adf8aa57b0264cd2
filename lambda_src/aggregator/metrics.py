"""Batch metrics as CloudWatch embedded metric format (EMF): one log line, no API call.

CloudWatch Logs extracts the metrics from the line; the construct's alarms and dashboard
read them under :data:`NAMESPACE` with the single dimension ``FunctionName``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

NAMESPACE = "StreamAggregator"
DIMENSION = "FunctionName"

COUNTS: Mapping[str, str] = {
    # metric name -> BatchResult field
    "RecordsProcessed": "records",
    "RecordsSkipped": "skipped_malformed",
    "RecordsCounted": "counted_records",
    "SnapshotWrites": "snapshot_writes",
    "DuplicatesIgnored": "duplicate_contributions",
    "RefillsWritten": "refills_written",
    "RefillsLostRace": "refills_lost_race",
    "RefillsFailed": "refills_failed",
    "ArchivedRecords": "archived_records",
    "FailedWrites": "failed_writes",
}
DURATION = "BatchDuration"


def emf_line(summary: Mapping[str, int], duration_ms: float, *, function_name: str,
             timestamp_ms: int, counts: Mapping[str, str] = COUNTS) -> str:
    """The EMF document for one batch; ``counts`` maps metric names to summary fields
    (each pipeline has its own set, under the same namespace and dimension)."""
    document: dict[str, object] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION]],
                "Metrics": [{"Name": name, "Unit": "Count"} for name in counts]
                + [{"Name": DURATION, "Unit": "Milliseconds"}],
            }],
        },
        DIMENSION: function_name,
        DURATION: duration_ms,
    }
    for name, field in counts.items():
        document[name] = summary.get(field, 0)
    return json.dumps(document, separators=(",", ":"))
