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
    @property
    def events(self) -> int:
        """What the record adds to ``total_events`` (one per limit it moved)."""
        ...
    @property
    def marks(self) -> Mapping[str, int]:
        """Per-record counters the cumulative counters cannot rebuild (``{limit}#od``)."""
        ...


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
class Gap:
    """Records of the source between two counted ones that the item never saw one by one.

    Their tokens are counted (the counters at both ends say how many); their events and
    marks (an overdraw) are not, until a replay brings them: then they add those and no
    tokens. A gap never replayed keeps its tokens and lacks its events and overdraws.
    """

    low_position: str
    low_after: Counters
    """The source's counters after the counted record below the gap."""
    high_position: str
    high_before: Counters | None
    """The counters before the counted record above it (None: that one is an INSERT)."""

    def encode(self) -> str:
        return (f"{self.low_position} {pack(self.low_after)} {self.high_position} "
                f"{pack(self.high_before)}")

    @classmethod
    def decode(cls, text: str) -> Gap | None:
        parts = text.split(" ")
        if len(parts) != 4:
            return None
        low_after = unpack(parts[1])
        if low_after is None:
            return None
        return cls(parts[0], low_after, parts[2], unpack(parts[3]))


def encode_gaps(gaps: Sequence[Gap]) -> str:
    return ";".join(gap.encode() for gap in gaps)


def decode_gaps(text: str) -> tuple[Gap, ...]:
    """Gaps this module wrote; anything else reads as none (no events to add, no harm)."""
    return tuple(gap for part in text.split(";") if part and (gap := Gap.decode(part)))


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
    gaps: tuple[Gap, ...] = ()
    """Inside the range, in position order."""


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What a run adds to an item, given what the item already holds."""

    kept: tuple[Link, ...]
    """The run's records not yet counted one by one (each adds its events and marks)."""
    tokens: dict[str, int]
    """Whole tokens to add per limit: the new records' own, plus the gaps, plus the kept
    records' marks (zeros dropped)."""
    gaps: dict[str, int]
    """The part of ``tokens`` no record of the run carried (zeros dropped)."""
    range: CountedRange
    """What the item holds afterwards."""
    events: int = 0
    """What the kept records add to ``total_events``."""


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

    Records above the stored range continue the chain from its top, records below it run
    into its bottom; a break in either is a new gap (its tokens are added now). Records
    inside the range are duplicates, except those inside one of its gaps: they add their
    event and split the gap around them.
    """
    tokens: dict[str, int] = {}
    new_gaps: list[Gap] = []
    if stored is None:
        _chain(run, None, tokens, new_gaps)
        counted = CountedRange(run[0].position, run[0].before, run[-1].position,
                               run[-1].after, tuple(new_gaps))
        return _reconciled(tuple(run), tokens, new_gaps, counted, scale)
    below = [link for link in run if link.position < stored.first_position]
    above = [link for link in run if link.position > stored.last_position]
    inside = [link for link in run if stored.first_position <= link.position
              <= stored.last_position]
    if below:
        _chain(below, None, tokens, new_gaps)
        if stored.first_before is not None and stored.first_before != below[-1].after:
            new_gaps.append(Gap(below[-1].position, below[-1].after, stored.first_position,
                                stored.first_before))
    filled: list[Link] = []
    kept_gaps: list[Gap] = []
    for gap in stored.gaps:
        members = [link for link in inside
                   if gap.low_position < link.position < gap.high_position]
        filled += members
        kept_gaps += _split(gap, members)
    if above:
        top = None if stored.last_after is None else (stored.last_position, stored.last_after)
        _chain(above, top, tokens, new_gaps)
    counted = CountedRange(
        below[0].position if below else stored.first_position,
        below[0].before if below else stored.first_before,
        above[-1].position if above else stored.last_position,
        above[-1].after if above else stored.last_after,
        tuple(sorted((*kept_gaps, *new_gaps), key=lambda gap: gap.low_position)),
    )
    return _reconciled((*below, *filled, *above), tokens, new_gaps, counted, scale)


def _reconciled(kept: tuple[Link, ...], tokens: dict[str, int], new_gaps: list[Gap],
                counted: CountedRange, scale: int) -> Reconciled:
    """The records' own tokens plus what the cumulative counters moved across new gaps,
    and every kept record's events and marks (a record inside a filled gap included)."""
    gap_tokens: dict[str, int] = {}
    for gap in new_gaps:
        if gap.high_before is not None:
            _add(gap_tokens, whole_tokens_between(gap.low_after, gap.high_before, scale))
    _add(tokens, gap_tokens)
    events = 0
    for link in kept:
        events += link.events
        if link.marks:
            _add(tokens, link.marks)
    return Reconciled(kept, _nonzero(tokens), _nonzero(gap_tokens), counted, events)


def _chain(links: Sequence[Link], previous: tuple[str, Counters] | None,
           tokens: dict[str, int], gaps: list[Gap]) -> None:
    """Each link's own tokens, and a gap wherever a link does not continue the chain."""
    for link in links:
        before = link.before
        if previous is not None and before is not None and before != previous[1]:
            gaps.append(Gap(previous[0], previous[1], link.position, before))
        _add(tokens, link.counters)
        previous = (link.position, link.after)


def _split(gap: Gap, members: Sequence[Link]) -> list[Gap]:
    """What remains of ``gap`` once ``members`` (inside it, in order) are counted."""
    if not members:
        return [gap]
    remaining = []
    low: tuple[str, Counters] = (gap.low_position, gap.low_after)
    for link in members:
        if link.before is None or link.before != low[1]:
            remaining.append(Gap(low[0], low[1], link.position, link.before))
        low = (link.position, link.after)
    if gap.high_before is None or gap.high_before != low[1]:
        remaining.append(Gap(low[0], low[1], gap.high_position, gap.high_before))
    return remaining


def _add(into: dict[str, int], amounts: Mapping[str, int]) -> None:
    for name, amount in amounts.items():
        into[name] = into.get(name, 0) + amount


def _nonzero(amounts: dict[str, int]) -> dict[str, int]:
    return {name: amount for name, amount in amounts.items() if amount}
