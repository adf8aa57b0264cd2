"""Batch metrics as CloudWatch embedded metric format (EMF): one log line, no API call.

CloudWatch Logs extracts the metrics from the line. Every pipeline writes under its own
namespace with the single dimension ``FunctionName``; each names its own counts (a
pipeline's ``metrics`` module holds its namespace and its ``COUNTS``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

DIMENSION = "FunctionName"
DURATION = "BatchDuration"
BY_FUNCTION: tuple[tuple[str, ...], ...] = ((DIMENSION,),)
"""The default dimension sets: each metric per function only."""


def emf_line(summary: Mapping[str, int], duration_ms: float, *, namespace: str,
             function_name: str, timestamp_ms: int, counts: Mapping[str, str],
             properties: Mapping[str, object],
             dimension_sets: Sequence[Sequence[str]] = BY_FUNCTION) -> str:
    """The EMF document for one batch; ``counts`` maps metric names to summary fields.

    ``properties`` (the invocation's log fields) ride along as plain keys: CloudWatch
    keeps them in the log line without making metrics or dimensions of them. An empty
    dimension set in ``dimension_sets`` also publishes each metric without dimensions.
    """
    document: dict[str, object] = {
        **properties,
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [list(names) for names in dimension_sets],
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
