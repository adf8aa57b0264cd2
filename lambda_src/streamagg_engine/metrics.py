"""Batch metrics as CloudWatch embedded metric format (EMF): one log line, no API call.

CloudWatch Logs extracts the metrics from the line. Every pipeline writes under its own
namespace with the single dimension ``FunctionName``; each names its own counts (a
pipeline's ``metrics`` module holds its namespace and its ``COUNTS``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

DIMENSION = "FunctionName"
DURATION = "BatchDuration"


def emf_line(summary: Mapping[str, int], duration_ms: float, *, namespace: str,
             function_name: str, timestamp_ms: int, counts: Mapping[str, str],
             properties: Mapping[str, object]) -> str:
    """The EMF document for one batch; ``counts`` maps metric names to summary fields.

    ``properties`` (the invocation's log fields) ride along as plain keys: CloudWatch
    keeps them in the log line without making metrics or dimensions of them.
    """
    document: dict[str, object] = {
        **properties,
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
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
