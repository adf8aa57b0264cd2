"""The projection's batch metrics, written by :func:`streamagg_engine.metrics.emf_line`.

Its own namespace, so its figures never mix with another pipeline's; the metric
names ``RecordsSkipped``/``FailedWrites`` (or their SQS counterparts) are the ones
the shared alarm plumbing reads.
"""

from __future__ import annotations

from collections.abc import Mapping

NAMESPACE = "StreamAggregator/Projection"

COUNTS: Mapping[str, str] = {
    # metric name -> BatchResult field
    "RecordsProcessed": "records",
    "RecordsSkipped": "skipped_malformed",
    "RecordsIgnored": "ignored",
    "ItemsPut": "items_put",
    "ItemsDeleted": "items_deleted",
    "BatchWriteCalls": "batch_write_calls",
    "UnprocessedRetries": "unprocessed_retries",
    "FailedWrites": "failed_writes",
}
