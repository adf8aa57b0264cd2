"""The projection's batch metrics, written by :func:`aggregator.metrics.emf_line`.

Same namespace and dimension as the usage pipeline, so the shared alarm plumbing reads
``RecordsSkipped`` and ``FailedWrites`` for either function.
"""

from __future__ import annotations

from collections.abc import Mapping

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
