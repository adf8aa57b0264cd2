from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamagg_engine.errors import MalformedRecordError
from streamagg_engine.records import parse_record
from streamagg_projection.config import ProjectionConfig
from streamagg_projection.processor import (
    ItemWrites,
    chunks,
    coalesce,
    decode_change,
    requests,
)
from streamagg_projection.transform import SORT_KEY, Key, project

from .support import image, record

CONFIG = ProjectionConfig()
DAY = "2025-11-16"
AT = "2025-11-16T14:30:15.000Z"


def plan(*raws: dict[str, Any]) -> list[ItemWrites]:
    return coalesce(decode_change(parse_record(r, "source_id"), CONFIG)[0] for r in raws)


def test_a_dropped_tag_deletes_its_tag_item_and_rewrites_the_rest() -> None:
    before, after = image(tags=["AI", "europe"]), image(tags=["AI"])
    (writes,) = plan(record(before, after))
    assert writes.deletes == {(DAY, f"TAG#europe#{AT}#newsapi#eu-ai-act")}
    assert set(writes.puts) == {(DAY, f"{AT}#newsapi#eu-ai-act"),
                                (DAY, f"TAG#AI#{AT}#newsapi#eu-ai-act")}


def test_remove_deletes_the_base_item_and_every_tag_item_of_the_old_image() -> None:
    (writes,) = plan(record(image(tags=["AI", "europe"]), None))
    assert writes.puts == {}
    assert len(writes.deletes) == 3


def test_back_to_pending_removes_the_projection() -> None:
    (writes,) = plan(record(image(tags=["AI"]), image(status="pending", score=None)))
    assert writes.puts == {}
    assert len(writes.deletes) == 2


def test_a_new_day_moves_the_items() -> None:
    moved = image(ingested_at="2025-11-17T01:00:00.000Z", tags=["AI"])
    (writes,) = plan(record(image(tags=["AI"]), moved))
    assert {day for day, _ in writes.deletes} == {DAY}
    assert {day for day, _ in writes.puts} == {"2025-11-17"}


def test_pending_records_write_nothing() -> None:
    assert plan(record(None, image(status="pending", score=None))) == []


def test_a_malformed_update_still_removes_the_old_projection() -> None:
    raw = record(image(tags=["AI"]), image(score=None, tags=["AI"]))
    change, problem = decode_change(parse_record(raw, "source_id"), CONFIG)
    assert problem is not None
    assert "'score'" in problem.reason
    (writes,) = coalesce([change])
    assert writes.puts == {}
    assert len(writes.deletes) == 2


def test_several_records_of_an_item_in_a_batch_become_one_request_per_key() -> None:
    first, second, third = image(tags=["AI"]), image(tags=["europe"]), image(tags=["AI"])
    (writes,) = plan(record(None, first, sequence=1), record(first, second, sequence=2),
                     record(second, third, sequence=3))
    assert writes.deletes == {(DAY, f"TAG#europe#{AT}#newsapi#eu-ai-act")}
    assert [r.sequence_number for r in writes.records] == ["1", "2", "3"]
    keys = [r.key for r in requests([writes], SORT_KEY)]
    assert len(keys) == len(set(keys)) == 3


def test_chunks_hold_at_most_25_requests() -> None:
    many = [image(f"s{i}", tags=["AI", "europe"]) for i in range(20)]
    found = list(requests(plan(*(record(None, m) for m in many)), SORT_KEY))
    sizes = [len(c) for c in chunks(found)]
    assert sizes == [25, 25, 10]


_images = st.one_of(
    st.none(),
    st.builds(lambda tags, day, status, score: image(
        ingested_at=f"2025-11-{day}T10:00:00.000Z", tags=sorted(tags) or None, status=status,
        score=score), st.sets(st.sampled_from(["AI", "europe", "climate"])),
        st.sampled_from(["16", "17"]), st.sampled_from(["analyzed", "pending"]),
        st.sampled_from(["0.5", None])),
)


@given(st.lists(_images, min_size=1, max_size=8))
def test_coalescing_equals_applying_the_records_one_by_one(history: list[Any]) -> None:
    """The item's key here is only source_id, so ingested_at may change in a MODIFY."""
    pairs = [(old, new) for old, new in zip([None, *history], history, strict=False)
             if not (old is None and new is None)]
    raws = []
    for i, (old, new) in enumerate(pairs):
        raw = record(old, new, sequence=i + 1)
        raw["dynamodb"]["Keys"] = {"source_id": {"S": "newsapi#eu-ai-act"}}
        raws.append(raw)
    one_by_one: dict[Key, Any] = {}
    for raw in raws:
        for writes in plan(raw):
            _apply(one_by_one, writes)
    together: dict[Key, Any] = {}
    for writes in plan(*raws):
        _apply(together, writes)
    assert together == one_by_one
    final = history[-1]
    assert together == (_safe(final))


def _apply(table: dict[Key, Any], writes: ItemWrites) -> None:
    for key in writes.deletes:
        table.pop(key, None)
    table.update(writes.puts)


def _safe(final: Any) -> dict[Key, Any]:
    try:
        return project(final, CONFIG)
    except MalformedRecordError:  # a malformed final image projects nothing
        return {}


def test_a_key_two_source_items_project_goes_to_the_newest(
        caplog: pytest.LogCaptureFixture) -> None:
    """Only possible when the source table's key is not (source_id[, ingested_at])."""
    older, newer = record(None, image(sentiment="negative"), sequence=1), \
        record(None, image(sentiment="positive"), sequence=2)
    newer["dynamodb"]["Keys"] = {"source_id": {"S": "newsapi#eu-ai-act"},
                                 "ingested_at": {"S": "another-key"}}
    with caplog.at_level(logging.WARNING):
        (only,) = requests(plan(older, newer), SORT_KEY)
    assert only.request["PutRequest"]["Item"]["sentiment"] == {"S": "positive"}
    assert "same dashboard key" in caplog.text
