"""One source image -> its dashboard items. Pure: no boto3, no clock.

The projection of an image is a pure function of the image alone, so a redelivered
record writes byte-identical items and the dashboard converges on the projection of the
source table's final state (``docs/projection.md``). In particular ``expires_at`` is
derived from ``ingested_at``, never from the time of processing.

Table design: ``day_partition`` (the UTC day of ``ingested_at``) is the partition key,
``sk`` the sort key, unique per (source item, tag):

* the base item: ``{ingested_at}#{source_id}``, which starts with a digit;
* one item per matched tag: ``TAG#{tag}#{ingested_at}#{source_id}``.

Base and tag items never collide (a digit is not ``T``), tags hold no ``#`` and a parsed
``ingested_at`` holds none either, so each key names exactly one (item, tag). Only base
items carry ``sentiment_score_combined`` and only tag items carry ``tag``: the two
global indexes are sparse and list every source item once (the seed's tag items copied
the combined key, so its by-sentiment index showed an item 1 + N times).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from streamagg_engine.bounds import MAX_DIGITS, parse_instant
from streamagg_engine.ddb_json import Image, get_string
from streamagg_engine.errors import MalformedRecordError
from streamagg_engine.limits import check_item, check_key

from .config import ProjectionConfig

PARTITION_KEY = "day_partition"
SORT_KEY = "sk"
COMBINED = "sentiment_score_combined"
TAG = "tag"
TTL_ATTRIBUTE = "expires_at"
TAG_PREFIX = "TAG#"
COPIED = ("source_type", "source_url", "text_snippet")
"""Optional source strings copied onto every dashboard item when present."""
_DAY = 86_400
INDEX_KEYS = {COMBINED: "by-sentiment sort key", TAG: "by-tag partition key",
              "ingested_at": "by-tag sort key"}
"""The dashboard's index key attributes (``infra/projection.py``): DynamoDB refuses an
item whose index key value is empty or over its limit."""

Key = tuple[str, str]
"""A dashboard item's (day_partition, sk)."""
Item = dict[str, Any]
"""A dashboard item in DynamoDB JSON."""
Projection = dict[Key, Item]


def project(image: Image | None, config: ProjectionConfig) -> Projection:
    """The dashboard items of ``image``: none unless it is analysed.

    Raises:
        MalformedRecordError: the image is analysed but cannot be projected (a required
            field missing or invalid); the reason names the field.
    """
    if image is None or get_string(image, "status") != config.analyzed_status:
        return {}
    source_id = _required_string(image, "source_id")
    ingested_at = _required_string(image, "ingested_at")
    moment = _instant(ingested_at)
    sentiment = _required_string(image, "sentiment")
    if "#" in sentiment:
        raise MalformedRecordError(f"sentiment {sentiment!r} contains '#'")
    score_text, score = _score(image)
    tags = _tags(image)
    day = moment.strftime("%Y-%m-%d")
    base: Item = {
        PARTITION_KEY: {"S": day},
        "ingested_at": {"S": ingested_at},
        "source_id": {"S": source_id},
        "sentiment": {"S": sentiment},
        "score": {"N": score_text},
    }
    for name in COPIED:
        value = get_string(image, name)
        if value is not None:
            base[name] = {"S": value}
    if tags:
        base["matched_tags"] = {"SS": tags}
    if config.ttl_days:
        base[TTL_ATTRIBUTE] = {"N": str(int(moment.timestamp()) + config.ttl_days * _DAY)}
    suffix = f"{ingested_at}#{source_id}"
    items: Projection = {
        (day, suffix): {
            **base, SORT_KEY: {"S": suffix},
            COMBINED: {"S": f"{sentiment}#{float(score):.{config.score_decimals}f}"},
        },
    }
    for tag in tags:
        sk = f"{TAG_PREFIX}{tag}#{suffix}"
        items[(day, sk)] = {**base, SORT_KEY: {"S": sk}, TAG: {"S": tag}}
    for item in items.values():
        _check_limits(item)
    return items


def _check_limits(item: Item) -> None:
    """The item as DynamoDB must take it: keys and index keys in their limits, 400 KB.

    Checked here, at planning time, so a write DynamoDB would refuse on every attempt
    is never sent: the record is skipped, and its old projection still removed.
    """
    check_key(item[SORT_KEY]["S"], SORT_KEY, sort=True)
    for name, what in INDEX_KEYS.items():
        if name in item:
            check_key(item[name]["S"], f"{name} ({what})", index=True)
    check_item(item, f"dashboard item {item[SORT_KEY]['S'][:60]!r}")


def key_of(item: Mapping[str, Any]) -> Key:
    """The (day_partition, sk) of a dashboard item or key in DynamoDB JSON."""
    return (item[PARTITION_KEY]["S"], item[SORT_KEY]["S"])


def key_json(key: Key) -> dict[str, dict[str, str]]:
    return {PARTITION_KEY: {"S": key[0]}, SORT_KEY: {"S": key[1]}}


def _required_string(image: Image, name: str) -> str:
    value = get_string(image, name)
    if not value:
        raise MalformedRecordError(f"required field {name!r} is missing or empty")
    return value


def _instant(ingested_at: str) -> datetime:
    """``ingested_at`` as an aware UTC datetime; a naive, unparsable or out-of-range one
    (before 1970, after 9999 in UTC) is malformed."""
    return parse_instant(ingested_at, "ingested_at")


def _score(image: Image) -> tuple[str, Decimal]:
    """The score's exact text and value; the combined key sorts right only within 0..1."""
    value = image.get("score")
    text = value.get("N") if isinstance(value, dict) and len(value) == 1 else None
    if not isinstance(text, str):
        raise MalformedRecordError("required field 'score' is missing or not a number")
    if len(text) > MAX_DIGITS + 8:
        raise MalformedRecordError("score has more digits than a score can")
    try:
        number = Decimal(text)
    except InvalidOperation as exc:
        raise MalformedRecordError(f"score {text!r} is not a number") from exc
    if not number.is_finite() or not 0 <= number <= 1:
        raise MalformedRecordError(f"score {text!r} is outside 0..1")
    return text, number


def _tags(image: Image) -> list[str]:
    value = image.get("matched_tags")
    if value is None:
        return []
    tags = value.get("SS") if isinstance(value, dict) and len(value) == 1 else None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise MalformedRecordError("matched_tags is not a string set")
    for tag in tags:
        if not tag or "#" in tag:
            raise MalformedRecordError(f"tag {tag!r} is empty or contains '#'")
    return sorted(set(tags))
