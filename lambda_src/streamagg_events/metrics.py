"""The event pipeline's batch metrics, written by :func:`streamagg_engine.metrics.emf_line`.

Its own namespace, so its figures never mix with another pipeline's; the metric
names ``RecordsSkipped``/``FailedWrites`` (or their SQS counterparts) are the ones
the shared alarm plumbing reads.
"""

from __future__ import annotations

from collections.abc import Mapping

NAMESPACE = "StreamAggregator/EventMetrics"

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
    # seed 003's error metrics, one per stage; records, not writes
    "ParseErrors": "parse_errors",
    "ValidationErrors": "validation_errors",
    "EnrichmentErrors": "enrichment_errors",
    "AggregationErrors": "aggregation_errors",
    "ArchiveErrors": "archive_errors",
}
