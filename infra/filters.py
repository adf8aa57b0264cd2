"""The event source mapping's default filter criteria, built from the aggregator's config.

Lambda applies filter criteria before it invokes the function, so records the
configuration ignores cost no invocation. Each filter must match a *superset* of what
the handler uses: a record filtered out is skipped silently and for good.

The filters use only ``eventName``, matched by exact value, an operator every event
source mapping supports. Filtering on the partition key would need "contains ``/BUCKET#``"
(zae-limiter's keys start with a namespace id), which Lambda's filter syntax does not
offer: a plain ``prefix`` on the marker matches no namespaced key, the mistake that kept
zae-limiter's own archive empty. Records of other items that pass are ignored by the
handler at no write cost.

* archival on: INSERT, MODIFY (snapshots, refill) and REMOVE (archive);
* archival off: INSERT and MODIFY only, so deletions (TTL sweeps of audit items, purges)
  never invoke the function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .pipeline_settings import AggregatorConfig

SOURCE_EVENTS = ("INSERT", "MODIFY")
ARCHIVE_EVENTS = ("REMOVE",)


def default_filters(config: AggregatorConfig) -> list[dict[str, Any]]:
    """The mapping's ``Filters`` for ``config``: one ``eventName`` pattern."""
    events = SOURCE_EVENTS + (ARCHIVE_EVENTS if config.enable_archival else ())
    return [{"pattern": json.dumps({"eventName": list(events)}, separators=(",", ":"))}]


def patterns(filters: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The decoded ``Pattern`` of each filter (for tests and documentation)."""
    return [json.loads(f["pattern"]) for f in filters]
