"""What a snapshot item knows of each source item feeding it, and how a run of records is
reconciled with it (pure: no I/O).

A bucket's cumulative counters form a chain: a record's old image is the previous
record's new image. A snapshot item remembers, per source, the *counted range*: the
first and last stream positions it counted, the counters just before the first and just
after the last. Two promises hold for that range:

* every record of the source that belongs to this item and lies inside the range is
  counted, so a replay of any of them is a duplicate, however late it comes;
* the item's counters hold exactly what the source's cumulative counters moved across
  the range (in whole tokens).

A record arrives at the range's top or below its bottom (a redrive of a batch Lambda
gave up on after later batches were counted). When its counters do not continue the
chain where the range ends (the top's counters after, or the bottom's counters
before), records of the source in between were never counted: given up, skipped as
malformed, filtered out. Both ends lie in this item's window, and a source's records come
in time order, so everything in between belongs to this window too, and the difference
of the cumulative counters is exactly what they consumed: it is added (a *gap*), and the
range grows over them. Nothing is counted twice and nothing is lost, even for records
that have left the stream; only a gap that crosses a window boundary cannot be placed by
an item alone (the redrive places it; see ``docs/operations.md``).

A run that starts with an INSERT starts a new chain (the bucket was created or
re-created: its counters start from zero), so no gap is read across it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

Counters = Mapping[str, int]
"""Limit name → cumulative counter, in stored units (millitokens)."""


class Link(Protocol):
    """One counted record, as the chain sees it."""

    @property
    def position(self) -> str: ...
    @property
    def counters(self) -> Mapping[str, int]:
        """Whole tokens the record itself adds (zero entries kept out)."""
        ...
    @property
    def before(self) -> Counters | None:
        """Every counter before the record; None for an INSERT (a new chain)."""
        ...
    @property
    def after(self) -> Counters: ...


def pack(counters: Counters | None) -> str:
    """A canonical string: equal counters give equal strings (a condition compares them).

    ``*`` stands for no counters known (an INSERT's before, or an unknown state).
    """
    if counters is None:
        return "*"
    return ",".join(f"{name}={value}" for name, value in sorted(counters.items()))


def unpack(text: str) -> dict[str, int] | None:
    """The inverse of :func:`pack`; None for ``*`` or text this module did not write."""
    if text == "*":
        return None
    if not text:
        return {}
    found = {}
    for part in text.split(","):
        name, equals, value = part.rpartition("=")
        if not equals or not name:
            return None
        try:
            found[name] = int(value)
        except ValueError:
            return None
    return found


@dataclass(frozen=True, slots=True)
class CountedRange:
    """What a snapshot item stores about one source (see the module docstring)."""

    first_position: str
    """"" when unknown (an item written before ranges existed): all up to the last counted."""
    first_before: Counters | None
    """None when the chain starts with an INSERT, or is unknown."""
    last_position: str
    last_after: Counters | None
    """None when unknown (an item written before ranges existed)."""

    def holds(self, position: str) -> bool:
        return self.first_position <= position <= self.last_position


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What a run adds to an item, given what the item already holds."""

    kept: tuple[Link, ...]
    """The run's records not yet counted (their number is added to ``total_events``)."""
    tokens: dict[str, int]
    """Whole tokens to add per limit: the kept records' own, plus the gaps (zeros dropped)."""
    gaps: dict[str, int]
    """The part of ``tokens`` no record of the run carried (zeros dropped)."""
    range: CountedRange
    """What the item holds afterwards."""


def whole_tokens_between(before: Counters, after: Counters, scale: int) -> dict[str, int]:
    """Per limit present at both ends, the change of the whole-token floor (nonzero only)."""
    moved = {}
    for name, value in after.items():
        start = before.get(name)
        if start is not None and (delta := value // scale - start // scale):
            moved[name] = delta
    return moved


def reconcile(run: Sequence[Link], stored: CountedRange | None, scale: int) -> Reconciled:
    """Add ``run`` (one source's records for one item, in stream order) to ``stored``.

    Records inside the stored range are duplicates. Those above it continue the chain from
    its top, those below it from nowhere into its bottom; a break in either is a gap.
    """
    if stored is None:
        below: Sequence[Link] = ()
        above: Sequence[Link] = run
    else:
        below = [link for link in run if link.position < stored.first_position]
        above = [link for link in run if link.position > stored.last_position]
    tokens: dict[str, int] = {}
    gaps: dict[str, int] = {}
    if below:
        assert stored is not None  # below is empty without a stored range
        _chain(below, None, scale, tokens, gaps)
        if stored.first_before is not None:
            _add(gaps, whole_tokens_between(below[-1].after, stored.first_before, scale))
    if above:
        _chain(above, None if stored is None else stored.last_after, scale, tokens, gaps)
    _add(tokens, gaps)
    kept = (*below, *above)
    if stored is None:
        result = CountedRange(run[0].position, run[0].before, run[-1].position, run[-1].after)
    else:
        result = CountedRange(
            below[0].position if below else stored.first_position,
            below[0].before if below else stored.first_before,
            above[-1].position if above else stored.last_position,
            above[-1].after if above else stored.last_after,
        )
    return Reconciled(kept, _nonzero(tokens), _nonzero(gaps), result)


def _chain(links: Sequence[Link], previous: Counters | None, scale: int,
           tokens: dict[str, int], gaps: dict[str, int]) -> None:
    """Each link's own tokens, and the gap wherever a link does not continue the chain."""
    for link in links:
        before = link.before
        if previous is not None and before is not None and before != previous:
            _add(gaps, whole_tokens_between(previous, before, scale))
        _add(tokens, link.counters)
        previous = link.after


def _add(into: dict[str, int], amounts: Mapping[str, int]) -> None:
    for name, amount in amounts.items():
        into[name] = into.get(name, 0) + amount


def _nonzero(amounts: dict[str, int]) -> dict[str, int]:
    return {name: amount for name, amount in amounts.items() if amount}
