"""A snapshot item's key attributes, from the configured templates, and DynamoDB's limits
on them checked once per (namespace, entity, resource) (pure: no I/O).

A record whose entity or resource id makes a key DynamoDB must refuse (a sort key over
1,024 bytes, an index key over 1,024 bytes or empty) is skipped when it is decoded, with
the key named, instead of failing its batch on every delivery.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from streamagg_engine.limits import check_key
from streamagg_engine.windows import Window

from .config import AggregatorConfig
from .processor import SnapshotKey

_WIDEST_WINDOW_KEY = "2024-01-15T14:00:00Z"
"""Every window key has this length, and ``monthly`` is the longest window name."""


def key_fields(key: SnapshotKey) -> dict[str, str]:
    """The fields the configured key templates may use."""
    return {"ns": key.namespace, "entity": key.entity, "resource": key.resource,
            "window": key.window.value, "window_key": key.window_key}


def snapshot_item_key(config: AggregatorConfig, key: SnapshotKey) -> dict[str, Any]:
    """A snapshot item's primary key."""
    fields = key_fields(key)
    return {"PK": {"S": config.snapshot_pk.format_map(fields)},
            "SK": {"S": config.snapshot_sk.format_map(fields)}}


@lru_cache(maxsize=8192)
def check_snapshot_keys(config: AggregatorConfig, namespace: str, entity: str,
                        resource: str) -> None:
    """Raises MalformedRecordError naming the key attribute DynamoDB would refuse.

    Cached: a bucket feeds the same items batch after batch. Checked with the longest
    window name, so every configured window's keys fit when these do.
    """
    fields = key_fields(SnapshotKey(namespace, entity, resource, Window.MONTHLY,
                                    _WIDEST_WINDOW_KEY))
    check_key(config.snapshot_pk.format_map(fields), "PK")
    check_key(config.snapshot_sk.format_map(fields), "SK", sort=True)
    index_keys = [("GSI2PK", config.snapshot_gsi2pk), ("GSI2SK", config.snapshot_gsi2sk)]
    if config.snapshot_gsi4pk:
        index_keys += [("GSI4PK", config.snapshot_gsi4pk), ("GSI4SK", config.snapshot_gsi4sk)]
    for name, template in index_keys:
        check_key(template.format_map(fields), name, index=True)
