"""The projection's batch metrics, written by :func:`streamagg_engine.metrics.emf_line`.

Each profile names them (:data:`METRICS`): ours under their own namespace, so their figures
never mix with another pipeline's; seed 004's under the document's namespace
``SentimentAnalyzer`` with its ``StreamProcessorSuccess`` (items written),
``StreamProcessorErrors`` (records skipped) and ``StreamProcessorBatchSize`` (records per
invocation), so the document's dashboards and alarms read them. The alarms find the skipped
records and the failed writes by :attr:`MetricNames.skipped` and
:attr:`MetricNames.failed_writes`, whatever the profile calls them. The document publishes
its metrics without dimensions, so seed 004's are published that way too, beside the
``FunctionName`` set our alarms and dashboard read: an alarm built to the document sees data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streamagg_engine.metrics import BY_FUNCTION

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
    dimension_sets: tuple[tuple[str, ...], ...] = BY_FUNCTION
    """The EMF dimension sets each metric is published under."""


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
        skipped="StreamProcessorErrors", dimension_sets=(*BY_FUNCTION, ())),
}
"""Each profile's metric names."""

NAMESPACE = METRICS[DEFAULT].namespace
COUNTS: Mapping[str, str] = METRICS[DEFAULT].counts
