"""The counted range of a source in a snapshot item: exact whatever order runs arrive in."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from aggregator.chain import CountedRange, pack, reconcile, unpack, whole_tokens_between

SCALE = 1000


@dataclass(frozen=True)
class Link:
    position: str
    counters: Mapping[str, int]
    before: Mapping[str, int] | None
    after: Mapping[str, int]
    events: int = 1
    marks: Mapping[str, int] = field(default_factory=dict)


def chain(start: int, moves: list[int]) -> list[Link]:
    """One bucket's records: each moves ``tpm`` by a move (refunds are negative)."""
    links, value = [], start
    for i, move in enumerate(moves):
        after = value + move
        tokens = {"tpm": after // SCALE - value // SCALE}
        links.append(Link(str(i + 1).zfill(40), {k: v for k, v in tokens.items() if v},
                          {"tpm": value}, {"tpm": after}))
        value = after
    return links


def runs_of(links: list[Link], cuts: list[int]) -> list[list[Link]]:
    edges = sorted({0, len(links), *(c % (len(links) + 1) for c in cuts)})
    return [links[a:b] for a, b in itertools.pairwise(edges) if b > a]


@given(start=st.integers(-10**9, 10**9),
       moves=st.lists(st.integers(-5_000, 50_000), min_size=1, max_size=40),
       cuts=st.lists(st.integers(0, 40), max_size=8),
       order=st.randoms(use_true_random=False),
       lost=st.sets(st.integers(0, 8)))
def test_tokens_are_exact_whatever_runs_arrive_are_repeated_or_lost(
    start: int, moves: list[int], cuts: list[int], order: object, lost: set[int],
) -> None:
    """Runs arrive in any order, some twice; some (given up) only at the end, as a redrive
    brings them: tokens are exact before the redrive, tokens and events after it."""
    links = chain(start, moves)
    runs = runs_of(links, cuts)
    late = [run for i, run in enumerate(runs) if i in lost and 0 < i < len(runs) - 1]
    kept = [run for run in runs if run not in late]
    deliveries = kept + kept[: len(kept) // 2]
    order.shuffle(deliveries)  # type: ignore[attr-defined]
    expected = whole_tokens_between({"tpm": start}, links[-1].after, SCALE)
    stored: CountedRange | None = None
    total: dict[str, int] = {}
    counted_positions: list[str] = []
    for number, run in enumerate([*deliveries, *late, *late]):
        if number == len(deliveries):
            assert {k: v for k, v in total.items() if v} == expected
        done = reconcile(run, stored, SCALE)
        for name, amount in done.tokens.items():
            total[name] = total.get(name, 0) + amount
        counted_positions += [link.position for link in done.kept]
        stored = done.range
    assert {k: v for k, v in total.items() if v} == expected
    assert len(counted_positions) == len(set(counted_positions))  # no event twice
    values = [start, *(link.after["tpm"] for link in links)]
    if len(set(values)) == len(values):
        # Every event once, unless the counters came back to a value they had: then
        # records between look like none (their tokens cancel out; their events are lost).
        assert sorted(counted_positions) == [link.position for link in links]
    assert stored is not None
    assert (stored.first_position, stored.last_position) == (links[0].position,
                                                             links[-1].position)


def test_an_insert_starts_a_new_chain_no_gap_is_read_across_it() -> None:
    old = chain(0, [5_000, 5_000])
    recreated = Link("3".zfill(40), {"tpm": 1}, None, {"tpm": 1_000})
    first = reconcile(old, None, SCALE)
    done = reconcile([recreated], first.range, SCALE)
    assert (done.tokens, done.gaps) == ({"tpm": 1}, {})


def test_a_gap_below_the_range_ends_where_the_range_begins() -> None:
    links = chain(0, [1_000] * 6)
    top = reconcile(links[4:], None, SCALE)
    bottom = reconcile(links[:2], top.range, SCALE)
    assert bottom.tokens == {"tpm": 4}
    assert bottom.gaps == {"tpm": 2}
    late = reconcile(links[2:4], bottom.range, SCALE)
    assert (len(late.kept), late.tokens, late.range.gaps) == (2, {}, ())
    assert reconcile(links[2:4], late.range, SCALE).kept == ()


def overdrawn(links: list[Link]) -> list[Link]:
    """The same records, each a two-limit debit that left a soft limit in debt."""
    return [Link(link.position, link.counters, link.before, link.after, 2, {"tpm#od": 1})
            for link in links]


def test_a_gap_counts_its_tokens_but_not_its_events_or_overdraws_until_replayed() -> None:
    links = overdrawn(chain(0, [1_000] * 4))
    first = reconcile(links[:1], None, SCALE)
    last = reconcile(links[3:], first.range, SCALE)
    assert (last.tokens, last.gaps, last.events) == ({"tpm": 3, "tpm#od": 1}, {"tpm": 2}, 2)
    replayed = reconcile(links[1:3], last.range, SCALE)
    assert (replayed.tokens, replayed.events) == ({"tpm#od": 2}, 4)
    again = reconcile(links, replayed.range, SCALE)
    assert (again.kept, again.tokens, again.events) == ((), {}, 0)


@given(st.dictionaries(st.text(st.characters(blacklist_characters=",="), min_size=1),
                       st.integers()))
def test_packed_counters_read_back_as_written(counters: dict[str, int]) -> None:
    assert unpack(pack(counters)) == counters
    assert unpack(pack(None)) is None
