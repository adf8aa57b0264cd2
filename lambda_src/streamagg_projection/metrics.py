"""The projection's batch metrics, written by :func:`streamagg_engine.metrics.emf_line`.

Each profile names them (:data:`METRICS`): ours under their own namespace, so their figures
never mix with another pipeline's; seed 004's under the document's namespace
``SentimentAnalyzer`` with its ``StreamProcessorSuccess`` (items written),
``StreamProcessorErrors`` (records skipped) and ``StreamProcessorBatchSize`` (records per
invocation), so the document's dashboards and alarms read them. The alarms find the skipped
records and the failed writes by :attr:`MetricNames.skipped` and
:attr:`MetricNames.failed_writes`, whatever the profile calls them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .config import DEFAULT, SEED_004


@dataclass(frozen=True)
class MetricNames:
    namespace: str
    counts: Mapping[str, str]
    """Metric name -> BatchResult field."""
    skipped: str
    """The metric of the records that were logged and skipped."""
    failed_writes: str = "FailedWrites"
    """The metric of the writes that failed after every retry."""


_SHARED: Mapping[str, str] = {
    "ItemsDeleted": "items_deleted",
    "BatchWriteCalls": "batch_write_calls",
    "UnprocessedRetries": "unprocessed_retries",
    "FailedWrites": "failed_writes",
}

METRICS: Mapping[str, MetricNames] = {
    DEFAULT: MetricNames(
        namespace="StreamAggregator/Projection",
        counts={"RecordsProcessed": "records", "RecordsSkipped": "skipped_malformed",
                "RecordsIgnored": "ignored", "ItemsPut": "items_put", **_SHARED},
        skipped="RecordsSkipped"),
    SEED_004: MetricNames(
        namespace="SentimentAnalyzer",
        counts={"StreamProcessorBatchSize": "records",
                "StreamProcessorErrors": "skipped_malformed", "RecordsIgnored": "ignored",
                "StreamProcessorSuccess": "items_put", **_SHARED},
        skipped="StreamProcessorErrors"),
}
"""Each profile's metric names."""

NAMESPACE = METRICS[DEFAULT].namespace
COUNTS: Mapping[str, str] = METRICS[DEFAULT].counts
