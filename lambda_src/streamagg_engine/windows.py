"""Calendar windows (UTC) that snapshots are kept for.

Window keys are the ISO timestamp of the window's first second, as zae-limiter writes
and reads them: ``2024-01-15T14:00:00Z`` (hourly), ``2024-01-15T00:00:00Z`` (daily),
``2024-01-01T00:00:00Z`` (monthly). Every window is a union of whole hours, so the keys
are computed once per hour and cached: the hot path does one integer division.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache

HOUR_MS = 3_600_000
EARLIEST_MS = 0
"""Times before the epoch come from no stream (and ``fromtimestamp`` rejects some)."""
LATEST_MS = 253_399_622_400_000
"""9999-12-01T00:00:00Z, exclusive: the monthly window of December 9999 would end in the
year 10000, which ``datetime`` cannot represent, so that month is the first one the
windows cannot hold."""


class Window(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    MONTHLY = "monthly"

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(w.value for w in cls)


def window_key(timestamp_ms: int, window: Window) -> str:
    """The key of the window holding ``timestamp_ms`` (epoch milliseconds)."""
    return _keys_for_hour(timestamp_ms // HOUR_MS)[window]


def window_keys(timestamp_ms: int) -> Mapping[Window, str]:
    """The keys of every window holding ``timestamp_ms``: one cache lookup for all."""
    return _keys_for_hour(timestamp_ms // HOUR_MS)


@lru_cache(maxsize=4096)
def _keys_for_hour(hour: int) -> Mapping[Window, str]:
    start = datetime.fromtimestamp(hour * 3600, tz=UTC)
    return {
        Window.HOURLY: start.strftime("%Y-%m-%dT%H:00:00Z"),
        Window.DAILY: start.strftime("%Y-%m-%dT00:00:00Z"),
        Window.MONTHLY: start.strftime("%Y-%m-01T00:00:00Z"),
    }


def parse_window_key(key: str) -> datetime:
    """The window's first second as an aware UTC datetime."""
    return datetime.strptime(key, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@lru_cache(maxsize=4096)
def window_end(key: str, window: Window) -> datetime:
    """The first second *after* the window (exclusive end); handles Dec→Jan and leap years.

    Cached: every snapshot write needs it, and a batch spans few windows.
    """
    start = parse_window_key(key)
    if window is Window.HOURLY:
        return datetime.fromtimestamp(start.timestamp() + 3600, tz=UTC)
    if window is Window.DAILY:
        return datetime.fromtimestamp(start.timestamp() + 86_400, tz=UTC)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def window_last_second(key: str, window: Window) -> str:
    """The window's last second as an ISO key, the inclusive end zae-limiter shows."""
    end = int(window_end(key, window).timestamp()) - 1
    return datetime.fromtimestamp(end, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
