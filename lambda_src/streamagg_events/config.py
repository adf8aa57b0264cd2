"""The event-metrics pipeline's one validated configuration (Lambda environment and synth).

Same pattern as :mod:`aggregator.config`: a frozen dataclass validated in
``__post_init__``, so a bad setting fails ``cdk synth`` with a message naming it. Pure:
the caller passes the environment mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import NoReturn

from streamagg_engine.errors import ConfigError
from streamagg_engine.windows import Window

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_WINDOWS = (Window.HOURLY, Window.DAILY)
MAX_ARCHIVE_OBJECT_BYTES = 5 * 1024 * 1024
MAX_ARCHIVE_OBJECT_EVENTS = 1000


@dataclass(frozen=True)
class EventMetricsConfig:
    """How validated events become counters, unique-user sets and archive objects."""

    metrics_table_name: str = "event-metrics"
    """Counters, unique-user sets and per-event markers (keys ``pk``/``sk``)."""
    lookup_table_name: str = "experiment-lookups"
    """Experiments and assignments, read by key (``pk``); never written."""
    windows: tuple[Window, ...] = _WINDOWS
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
        for name in ("metrics_table_name", "lookup_table_name"):
            if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", getattr(self, name)):
                _fail(name, f"{getattr(self, name)!r} is not a valid DynamoDB table name")
        if not self.windows or any(w not in _WINDOWS for w in self.windows):
            _fail("windows", "choose one or both of hourly, daily")
        if len(set(self.windows)) != len(self.windows):
            _fail("windows", "a window is listed twice")
        if not self.event_types or len(set(self.event_types)) != len(self.event_types):
            _fail("event_types", "list each accepted event type once, at least one")
        for event_type in self.event_types:
            if not _EVENT_TYPE.fullmatch(event_type):
                _fail("event_types", f"{event_type!r} is not lower_snake_case of 1-40 chars")
        _require_range("metrics_ttl_days", self.metrics_ttl_days, 0, 36_500)
        _require_range("marker_ttl_days", self.marker_ttl_days, 2, 400)
        _require_range("unique_user_shards", self.unique_user_shards, 1, 256)
        _require_range("archive_max_bytes", self.archive_max_bytes, 1024,
                       MAX_ARCHIVE_OBJECT_BYTES)
        _require_range("archive_max_events", self.archive_max_events, 1,
                       MAX_ARCHIVE_OBJECT_EVENTS)
        _require_range("transaction_size", self.transaction_size, 2 + len(self.windows), 100)
        _require_range("max_workers", self.max_workers, 1, 64)
        if self.archive_prefix.startswith("/") or "//" in self.archive_prefix:
            _fail("archive_prefix", f"{self.archive_prefix!r} is not a clean S3 key prefix")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            _fail("log_level", f"{self.log_level!r} is not DEBUG, INFO, WARNING or ERROR")

    @property
    def archival_enabled(self) -> bool:
        return self.enable_archival and bool(self.archive_bucket_name)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EventMetricsConfig:
        """Build from environment variables (``EVENTS_*``); unset ones take the defaults."""
        kwargs: dict[str, object] = {}
        for f in fields(cls):
            var = ENV_NAMES[f.name]
            if var in env:
                kwargs[f.name] = _parse(f.name, var, env[var])
        return cls(**kwargs)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that makes :meth:`from_env` rebuild exactly this object."""
        env: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, tuple):
                text = ",".join(str(v) for v in value)
            else:
                text = str(value)
            env[ENV_NAMES[f.name]] = text
        return env


ENV_NAMES: dict[str, str] = {f.name: f"EVENTS_{f.name.upper()}" for f in fields(EventMetricsConfig)}
_INTEGERS = frozenset({"metrics_ttl_days", "marker_ttl_days", "unique_user_shards",
                       "archive_max_bytes", "archive_max_events", "transaction_size",
                       "max_workers"})


def _parse(name: str, var: str, raw: str) -> object:
    text = raw.strip()
    if name == "windows":
        parts = [p.strip().lower() for p in text.split(",") if p.strip()]
        for part in parts:
            if part not in Window.values():
                _fail(name, f"unknown window {part!r}; choose from hourly, daily", var)
        return tuple(Window(p) for p in parts)
    if name == "event_types":
        return tuple(p.strip() for p in text.split(",") if p.strip())
    if name == "enable_archival":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        _fail(name, f"{raw!r} is not a boolean (true/false)", var)
    if name in _INTEGERS:
        try:
            return int(text)
        except ValueError:
            _fail(name, f"{raw!r} is not a whole number", var)
    return raw


def _fail(name: str, problem: str, var: str | None = None) -> NoReturn:
    raise ConfigError(f"{name} ({var or ENV_NAMES.get(name, name.upper())}): {problem}")


def _require_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(name, f"{value!r} must be a whole number from {low} to {high}")
