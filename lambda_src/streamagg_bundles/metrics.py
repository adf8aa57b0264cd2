"""The bundler's batch metrics, written by :func:`streamagg_engine.metrics.emf_line`.

Its own namespace, so its figures never mix with another pipeline's; the metric
names ``RecordsSkipped``/``FailedWrites`` (or their SQS counterparts) are the ones
the shared alarm plumbing reads.
"""

from __future__ import annotations

from collections.abc import Mapping

NAMESPACE = "StreamAggregator/Bundles"

COUNTS: Mapping[str, str] = {
    # metric name -> BundleBatchResult field
    "MessagesReceived": "messages",
    "MessagesSkipped": "skipped_malformed",
    "TestEvents": "test_events",
    "ObjectsReceived": "objects",
    "DuplicateObjects": "duplicate_objects",
    "ObjectsBundled": "objects_bundled",
    "ObjectsGone": "objects_gone",
    "ObjectsUnreadable": "objects_unreadable",
    "ObjectsOversized": "objects_oversized",
    "ObjectsDeferred": "objects_deferred",
    "BundlesWritten": "bundles_written",
    "BundleInputBytes": "bundle_input_bytes",
    "FailedWrites": "failed_writes",
    "FailedMessages": "failed_messages",
}
