"""Bundle planning: every object once, within the caps, the same key for the same set."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from streamagg_bundles.config import BundlerConfig
from streamagg_bundles.processor import KeyScheme, key_scheme, plan_bundles
from streamagg_bundles.s3_events import SourceObject

START = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)


@st.composite
def objects(draw: st.DrawFn) -> list[SourceObject]:
    count = draw(st.integers(0, 40))
    found = []
    for index in range(count):
        found.append(SourceObject(
            bucket="ingest", key=f"k{index}", size=draw(st.integers(0, 100)),
            etag=f"e{index}", version_id=draw(st.sampled_from([None, f"v{index}"])),
            sequencer=f"{index:04X}",
            event_time=START + timedelta(minutes=draw(st.integers(0, 180)))))
    return found


@given(objects(), st.integers(100, 400), st.integers(1, 99), st.randoms())
def test_every_object_lands_in_exactly_one_bundle_within_the_caps(
        found: list[SourceObject], cap: int, max_objects: int, rng: object) -> None:
    shuffled = list(found)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    plan = plan_bundles(shuffled, keys=KeyScheme("p/"), max_input_bytes=cap,
                        max_objects=max_objects)
    members = [m.identity for bundle in plan for m in bundle.members]
    assert sorted(members) == sorted(o.identity for o in found)
    for bundle in plan:
        assert bundle.input_bytes <= cap
        assert 1 <= len(bundle.members) <= max_objects
    assert len({bundle.key for bundle in plan}) == len(plan)
    again = plan_bundles(found, keys=KeyScheme("p/"), max_input_bytes=cap, max_objects=max_objects)
    assert [b.key for b in again] == [b.key for b in plan]


def test_the_key_is_partitioned_by_the_earliest_event_hour() -> None:
    late = SourceObject("b", "late", 1, "e1", None, "2", START + timedelta(hours=1, minutes=5))
    early = SourceObject("b", "early", 1, "e2", None, "1", START + timedelta(minutes=59))
    keys = KeyScheme("bundles/")
    key = keys.key([late, early])
    assert re.fullmatch(r"bundles/2026/03/31/23/bundle-[0-9a-f]{32}\.tar\.gz", key)
    assert keys.key([early, late]) == key
    assert keys.key([late]) != key
    assert KeyScheme().key([late]).startswith("2026/04/01/00/")


def test_an_object_that_does_not_fit_starts_the_next_bundle() -> None:
    sizes = [60, 30, 20, 100]
    found = [SourceObject("b", f"k{i}", size, f"e{i}", None, f"{i}",
                          START + timedelta(seconds=i)) for i, size in enumerate(sizes)]
    plan = plan_bundles(found, keys=KeyScheme(), max_input_bytes=100, max_objects=99)
    assert [[m.key for m in b.members] for b in plan] == [["k0", "k1"], ["k2"], ["k3"]]


def test_a_write_time_key_takes_the_invocations_hour_and_the_gzip_suffix() -> None:
    early = SourceObject("b", "early", 1, "e2", None, "1", START)
    config = BundlerConfig(distribution_bucket_name="dist", idempotency_table_name="claims",
                           profile="seed-001")
    now = datetime(2025, 7, 19, 9, 59, 59, 999_000, tzinfo=UTC)
    keys = key_scheme(config, int(now.timestamp() * 1000))
    key = keys.key([early])
    assert re.fullmatch(r"2025/07/19/09/bundle-[0-9a-f]{32}\.gz", key)
    assert key_scheme(config, int(now.timestamp() * 1000) + 1).key([early]) == \
        "2025/07/19/10/" + key.split("/")[-1]
    default = replace(config, profile="default", bundle_format="", partition_by="")
    assert key_scheme(default, 0).key([early]) == \
        "2026/03/31/23/" + key.split("/")[-1].replace(".gz", ".tar.gz")
