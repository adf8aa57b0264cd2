"""Tokens a coarser window counted from a bucket's counters that no finer window placed.

A gap (``chain.py``) is counted by the item that holds both of its ends. When the records
a batch lost straddle an hour, the daily item holds both ends and counts them; the hourly
items on either side each hold one end and cannot. Comparing, per bucket, what each
window counted from gaps in one batch tells how many tokens the finer windows lack (pure:
no I/O). A redrive of the DLQ's ranges places them while the stream still has the
records; after that, these figures are what the finer windows miss.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise

from streamagg_engine.windows import Window

from .processor import SnapshotKey

_SHARED_PREFIX = {Window.DAILY: len("2024-01-15T"), Window.MONTHLY: len("2024-01-")}
"""Characters a window key shares with the keys of the windows inside it."""
_FINEST_FIRST = (Window.HOURLY, Window.DAILY, Window.MONTHLY)


@dataclass(frozen=True)
class Unplaced:
    coarse: SnapshotKey
    finer: Window
    source: str
    tokens: dict[str, int]
    """Whole tokens per limit the ``finer`` items of ``coarse``'s window lack at most."""


def unplaced(gaps: Iterable[tuple[SnapshotKey, Mapping[str, Mapping[str, int]]]],
             windows: Iterable[Window]) -> list[Unplaced]:
    """Per coarse item and source: its gap tokens less those its finer items counted."""
    by_window: dict[Window, list[tuple[SnapshotKey, Mapping[str, Mapping[str, int]]]]] = {}
    for key, per_source in gaps:
        by_window.setdefault(key.window, []).append((key, per_source))
    configured = set(windows)
    order = [window for window in _FINEST_FIRST if window in configured]
    found = []
    for finer, coarse in pairwise(order):
        shared = _SHARED_PREFIX[coarse]
        for key, per_source in by_window.get(coarse, []):
            inside = [found_gaps for finer_key, found_gaps in by_window.get(finer, [])
                      if finer_key[:3] == key[:3]
                      and finer_key.window_key[:shared] == key.window_key[:shared]]
            for source, tokens in per_source.items():
                rest = dict(tokens)
                for placed in inside:
                    for name, amount in placed.get(source, {}).items():
                        rest[name] = rest.get(name, 0) - amount
                rest = {name: amount for name, amount in rest.items() if amount}
                if rest:
                    found.append(Unplaced(key, finer, source, rest))
    return found
