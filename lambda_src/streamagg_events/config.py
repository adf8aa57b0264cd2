"""The event-metrics pipeline's one validated configuration (Lambda environment and synth).

A frozen dataclass parsed by :mod:`streamagg_engine.settings` (variables ``EVENTS_*``) and
validated in ``__post_init__``, so a bad setting fails ``cdk synth`` with a message naming
it. Pure: the caller passes the environment mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from streamagg_engine.settings import CHOICES, EnvSettings
from streamagg_engine.windows import Window

_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_WINDOWS = (Window.HOURLY, Window.DAILY)
MAX_ARCHIVE_OBJECT_BYTES = 5 * 1024 * 1024
MAX_ARCHIVE_OBJECT_EVENTS = 1000


@dataclass(frozen=True)
class EventMetricsConfig(EnvSettings, env_prefix="EVENTS_"):
    """How validated events become counters, unique-user sets and archive objects."""

    metrics_table_name: str = "event-metrics"
    """Counters, unique-user sets and per-event markers (keys ``pk``/``sk``)."""
    lookup_table_name: str = "experiment-lookups"
    """Experiments and assignments, read by key (``pk``); never written."""
    windows: tuple[Window, ...] = field(default=_WINDOWS, metadata={CHOICES: _WINDOWS})
    """Counter windows: hourly and/or daily."""
    event_types: tuple[str, ...] = ("exposure", "click", "conversion", "purchase")
    """Accepted ``event_type`` values; each gets its own count and sum attributes."""
    metrics_ttl_days: int = 400
    """Counters expire this many days after their window ends; 0 keeps them forever."""
    marker_ttl_days: int = 8
    """Per-event markers expire after this; must outlive every possible redelivery."""
    unique_user_shards: int = 4
    """Unique-user sets per variant window are split over this many items (400 KB each)."""
    enable_archival: bool = True
    archive_bucket_name: str = ""
    """Empty disables archival whatever ``enable_archival`` says."""
    archive_prefix: str = "events/"
    archive_max_bytes: int = MAX_ARCHIVE_OBJECT_BYTES
    """An archive object holds at most this much uncompressed JSON ..."""
    archive_max_events: int = MAX_ARCHIVE_OBJECT_EVENTS
    """... and at most this many events."""
    transaction_size: int = 100
    """Actions per TransactWriteItems (DynamoDB allows 100)."""
    max_workers: int = 8
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        self.require_table_name("metrics_table_name")
        self.require_table_name("lookup_table_name")
        if not self.windows or any(w not in _WINDOWS for w in self.windows):
            self.invalid("windows", "choose one or both of hourly, daily")
        if len(set(self.windows)) != len(self.windows):
            self.invalid("windows", "a window is listed twice")
        if not self.event_types or len(set(self.event_types)) != len(self.event_types):
            self.invalid("event_types", "list each accepted event type once, at least one")
        for event_type in self.event_types:
            if not _EVENT_TYPE.fullmatch(event_type):
                self.invalid("event_types",
                             f"{event_type!r} is not lower_snake_case of 1-40 chars")
        self.require_range("metrics_ttl_days", 0, 36_500)
        self.require_range("marker_ttl_days", 2, 400)
        self.require_range("unique_user_shards", 1, 256)
        self.require_range("archive_max_bytes", 1024, MAX_ARCHIVE_OBJECT_BYTES)
        self.require_range("archive_max_events", 1, MAX_ARCHIVE_OBJECT_EVENTS)
        self.require_range("transaction_size", 2 + len(self.windows), 100)
        self.require_range("max_workers", 1, 64)
        self.require_key_prefix("archive_prefix")
        self.require_log_level()

    @property
    def archival_enabled(self) -> bool:
        return self.enable_archival and bool(self.archive_bucket_name)


ENV_NAMES: dict[str, str] = EventMetricsConfig.env_names()
