"""The bundler's batch metrics, written by :func:`aggregator.metrics.emf_line`.

Same namespace and dimension as the usage pipeline, so one dashboard and one alarm
style cover both; the metric names are the bundler's own.
"""

from __future__ import annotations

from collections.abc import Mapping

COUNTS: Mapping[str, str] = {
    # metric name -> BundleBatchResult field
    "MessagesReceived": "messages",
    "MessagesSkipped": "skipped_malformed",
    "TestEvents": "test_events",
    "ObjectsReceived": "objects",
    "DuplicateObjects": "duplicate_objects",
    "ObjectsBundled": "objects_bundled",
    "ObjectsGone": "objects_gone",
    "ObjectsOversized": "objects_oversized",
    "ObjectsDeferred": "objects_deferred",
    "BundlesWritten": "bundles_written",
    "BundleInputBytes": "bundle_input_bytes",
    "FailedWrites": "failed_writes",
    "FailedMessages": "failed_messages",
}
