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
``ingested_at`` holds none either, so each key names exactly one (item, tag).

Seed 004's design (``sort_key = "ingested_at"``): the sort key is ``ingested_at`` itself,
unchanged on the base item and ``{ingested_at}#{tag}`` on a tag item (the document's tag
items share the base item's key, so each would overwrite the last: a day's query would show
one item per source item, carrying the last tag). A tag item sorts right after its base
item, and a time-range condition on ``ingested_at`` still selects it. The source id is not
in this key: two source items ingested at the same instant share their dashboard items
(the newest wins, with a warning, as the document accepts). Only base
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

from .config import SK, ProjectionConfig

PARTITION_KEY = "day_partition"
SORT_KEY = SK
"""Our sort key; ``ProjectionConfig.sort_key`` names the one in use."""
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
"""A dashboard item's (day_partition, sort key value)."""
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
    sort = config.sort_key
    own = f"{ingested_at}#{source_id}" if sort == SORT_KEY else ingested_at
    items: Projection = {
        (day, own): {
            **base, sort: {"S": own},
            COMBINED: {"S": f"{sentiment}#{float(score):.{config.score_decimals}f}"},
        },
    }
    for tag in tags:
        value = f"{TAG_PREFIX}{tag}#{own}" if sort == SORT_KEY else f"{own}#{tag}"
        items[(day, value)] = {**base, sort: {"S": value}, TAG: {"S": tag}}
    for item in items.values():
        _check_limits(item, sort)
    return items


def _check_limits(item: Item, sort: str) -> None:
    """The item as DynamoDB must take it: keys and index keys in their limits, 400 KB.

    Checked here, at planning time, so a write DynamoDB would refuse on every attempt
    is never sent: the record is skipped, and its old projection still removed.
    """
    check_key(item[sort]["S"], sort, sort=True)
    for name, what in INDEX_KEYS.items():
        if name in item:
            check_key(item[name]["S"], f"{name} ({what})", index=True)
    check_item(item, f"dashboard item {item[sort]['S'][:60]!r}")


def key_of(item: Mapping[str, Any]) -> Key:
    """The key of a dashboard item or key in DynamoDB JSON, whichever sort key it has:
    an item of our design always has ``sk``, one of seed 004's never does."""
    sort = SORT_KEY if SORT_KEY in item else "ingested_at"
    return (item[PARTITION_KEY]["S"], item[sort]["S"])


def key_json(key: Key, sort: str = SORT_KEY) -> dict[str, dict[str, str]]:
    """The ``Key`` of a DeleteRequest; ``sort`` is ``ProjectionConfig.sort_key``."""
    return {PARTITION_KEY: {"S": key[0]}, sort: {"S": key[1]}}


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
