from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamagg_engine.errors import MalformedRecordError
from streamagg_projection.config import ProjectionConfig
from streamagg_projection.transform import key_json, key_of, project

from .support import image

CONFIG = ProjectionConfig()


def test_the_seed_example_becomes_a_base_item_and_one_item_per_tag() -> None:
    items = project(image(tags=["AI", "regulation", "europe"], source_type="newsapi",
                          source_url="https://www.bbc.com/news/technology-12345678",
                          text_snippet="European Union announces..."), CONFIG)
    base = items[("2025-11-16", "2025-11-16T14:30:15.000Z#newsapi#eu-ai-act")]
    assert base["sentiment_score_combined"] == {"S": "neutral#0.72"}
    assert base["score"] == {"N": "0.72"}
    assert base["matched_tags"] == {"SS": ["AI", "europe", "regulation"]}
    assert base["source_url"] == {"S": "https://www.bbc.com/news/technology-12345678"}
    assert "tag" not in base
    assert sorted(sk for _, sk in items if sk.startswith("TAG#")) == [
        "TAG#AI#2025-11-16T14:30:15.000Z#newsapi#eu-ai-act",
        "TAG#europe#2025-11-16T14:30:15.000Z#newsapi#eu-ai-act",
        "TAG#regulation#2025-11-16T14:30:15.000Z#newsapi#eu-ai-act",
    ]
    tag_item = items[("2025-11-16", "TAG#AI#2025-11-16T14:30:15.000Z#newsapi#eu-ai-act")]
    assert tag_item["tag"] == {"S": "AI"}
    assert "sentiment_score_combined" not in tag_item  # by_sentiment lists each item once


def test_ttl_is_seven_days_after_ingestion_not_after_processing() -> None:
    items = project(image(ingested_at="2025-11-16T14:30:15.000Z"), CONFIG)
    (item,) = items.values()
    assert item["expires_at"] == {"N": str(1763303415 + 7 * 86400)}
    (short,) = project(image(), ProjectionConfig(ttl_days=1)).values()
    assert short["expires_at"] == {"N": str(1763303415 + 86400)}
    (forever,) = project(image(), ProjectionConfig(ttl_days=0)).values()
    assert "expires_at" not in forever


def test_day_partition_is_the_utc_day_of_ingestion() -> None:
    (key,) = project(image(ingested_at="2025-11-16T23:30:00-02:00"), CONFIG)
    assert key[0] == "2025-11-17"


@pytest.mark.parametrize("score", ["0.725", "1", "0"])
def test_combined_attribute_formats_the_score_as_the_seed_does(score: str) -> None:
    (item,) = project(image(sentiment="positive", score=score), CONFIG).values()
    assert item["sentiment_score_combined"]["S"] == f"positive#{float(score):.2f}"


@pytest.mark.parametrize("status", ["pending", "failed"])
def test_items_that_are_not_analysed_project_nothing(status: str) -> None:
    assert project(image(status=status, score=None), CONFIG) == {}
    assert project(None, CONFIG) == {}


@pytest.mark.parametrize(("changes", "reason"), [
    ({"score": None}, "'score'"),
    ({"sentiment": None}, "'sentiment'"),
    ({"source_id": ""}, "'source_id'"),
    ({"ingested_at": "yesterday"}, "ISO 8601"),
    ({"ingested_at": "2025-11-16T14:30:15"}, "time zone"),
    ({"score": "1.5"}, "outside 0..1"),
    ({"sentiment": "very#good"}, "'#'"),
    ({"tags": ["A#B"]}, "'#'"),
])
def test_analysed_items_missing_or_with_invalid_fields_are_malformed(
        changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedRecordError, match=reason):
        project(image(**changes), CONFIG)


_tag = st.text(alphabet=st.characters(blacklist_characters="#", blacklist_categories=["Cs"]),
               min_size=1, max_size=8)
_source = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12)


@given(st.lists(st.tuples(_source, st.lists(_tag, max_size=3),
                          st.integers(1_600_000_000, 1_900_000_000)), min_size=2, max_size=6))
def test_keys_of_different_items_and_tags_never_collide_and_repeat_exactly(
        items: list[tuple[str, list[str], int]]) -> None:
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for source_id, tags, epoch in items:
        at = datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        first = project(image(source_id, ingested_at=at, tags=tags or None), CONFIG)
        assert first == project(image(source_id, ingested_at=at, tags=tags or None), CONFIG)
        assert len(first) == 1 + len(set(tags))
        for key in first:
            owner = seen.setdefault(key, (source_id, at))
            assert owner == (source_id, at)


def test_the_seed_004_key_is_ingested_at_and_a_tag_item_appends_its_tag() -> None:
    seed = ProjectionConfig(profile="seed-004")
    at = "2025-11-16T14:30:15.000Z"
    items = project(image(tags=["AI", "europe"]), seed)
    assert sorted(items) == [("2025-11-16", at), ("2025-11-16", f"{at}#AI"),
                             ("2025-11-16", f"{at}#europe")]
    base = items[("2025-11-16", at)]
    assert base["ingested_at"] == {"S": at}
    assert "sk" not in base
    assert base["sentiment_score_combined"] == {"S": "neutral#0.72"}
    assert items[("2025-11-16", f"{at}#AI")]["tag"] == {"S": "AI"}
    assert key_json(("2025-11-16", at), seed.sort_key) == \
        {"day_partition": {"S": "2025-11-16"}, "ingested_at": {"S": at}}
    assert key_of(base) == ("2025-11-16", at)
