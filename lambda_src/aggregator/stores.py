"""The usage aggregator's AWS I/O: two narrow adapters over clients passed in (the
archive's is the engine's :class:`streamagg_engine.stores.ArchiveStore`).

Exactly-once snapshots
----------------------
Each snapshot item keeps, per source item feeding it, a *watermark*: the stream position
(sequence number zero-padded to 40 digits, a string) of the newest record already added.
Streams keep order per item key, so a source's records arrive in order even when
batches are retried, bisected or run in parallel. An update ADDs only contributions
newer than the watermarks, conditioned on them; when the condition fails (a redelivery,
or a write that landed but whose response was lost), DynamoDB returns the stored item,
the contribution is recomputed from the newer records alone, and the write is retried.
Watermarks are strings (``wm_<digest of the source key>``), so zae-limiter's reader,
which counts every top-level *number*, never mistakes them for counters.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from streamagg_engine.errors import StoreError
from streamagg_engine.stores import to_store_error
from streamagg_engine.windows import window_end

from .config import AggregatorConfig
from .processor import SnapshotKey, SnapshotUpdate
from .refill import RefillPlan

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

WATERMARK_PREFIX = "wm_"
_MAX_CONFLICTS = 8


@lru_cache(maxsize=16_384)
def watermark_attribute(source_key: str) -> str:
    """Cached: a source feeds one item per window, batch after batch."""
    return WATERMARK_PREFIX + hashlib.blake2b(source_key.encode(), digest_size=8).hexdigest()


def key_fields(key: SnapshotKey) -> dict[str, str]:
    """The fields the configured key templates may use."""
    return {"ns": key.namespace, "entity": key.entity, "resource": key.resource,
            "window": key.window.value, "window_key": key.window_key}


def snapshot_item_key(config: AggregatorConfig, key: SnapshotKey) -> dict[str, Any]:
    """A snapshot item's primary key."""
    fields = key_fields(key)
    return {"PK": {"S": config.snapshot_pk.format_map(fields)},
            "SK": {"S": config.snapshot_sk.format_map(fields)}}


def stored_watermarks(update: SnapshotUpdate, item: Mapping[str, Any]) -> dict[str, str]:
    """The watermarks ``item`` holds for the sources feeding ``update``."""
    found = {}
    for source in update.by_source:
        value = item.get(watermark_attribute(source), {}).get("S")
        if isinstance(value, str):
            found[source] = value
    return found


class SnapshotStore:
    """Applies coalesced snapshot updates, one UpdateItem per snapshot item."""

    def __init__(self, client: DynamoDBClient, config: AggregatorConfig) -> None:
        self._client = client
        self._config = config
        # What every request of this configuration shares, worked out once.
        names = {
            "#entity": "entity_id", "#resource": "resource", "#window": "window",
            "#start": "window_start", "#events": "total_events",
            "#g2pk": "GSI2PK", "#g2sk": "GSI2SK",
        }
        sets = ["#entity = :entity", "#resource = :resource", "#window = :window",
                "#start = :start", "#g2pk = :g2pk", "#g2sk = :g2sk"]
        if config.snapshot_gsi4pk:
            names.update({"#g4pk": "GSI4PK", "#g4sk": "GSI4SK"})
            sets += ["#g4pk = :g4pk", "#g4sk = :g4sk"]
        if config.snapshot_ttl_days:
            names["#ttl"] = "ttl"
            sets.append("#ttl = if_not_exists(#ttl, :ttl)")
        self._names = names
        self._sets = "SET " + ", ".join(sets)

    def apply(self, update: SnapshotUpdate) -> int:
        """Apply what is new in ``update``; returns how many records were duplicates."""
        pending = update
        for _ in range(_MAX_CONFLICTS):
            if not pending.by_source:
                return len(update.records())
            request = self._request(pending)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("snapshot update", extra={
                    "entity_id": update.key.entity, "resource": update.key.resource,
                    "window": update.key.window.value, "window_key": update.key.window_key,
                    "limit_names": sorted(pending.totals()[0]),
                })
            try:
                self._client.update_item(**request)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise to_store_error(exc, "snapshot update") from exc
                stored: Mapping[str, Any] = exc.response.get("Item") or \
                    self._read_watermarks(request["Key"])  # type: ignore[assignment]
                pending = update.pending(stored_watermarks(update, stored))
                continue
            except BotoCoreError as exc:
                raise to_store_error(exc, "snapshot update") from exc
            return len(update.records()) - len(pending.records())
        raise StoreError("snapshot update: watermark kept moving", retryable=True,
                         code="WatermarkConflict")

    def _request(self, update: SnapshotUpdate) -> dict[str, Any]:
        config, key = self._config, update.key
        fields = key_fields(key)
        counters, events = update.totals()
        names = self._names.copy()
        values: dict[str, Any] = {
            ":entity": {"S": key.entity}, ":resource": {"S": key.resource},
            ":window": {"S": key.window.value}, ":start": {"S": key.window_key},
            ":events": {"N": str(events)},
            ":g2pk": {"S": config.snapshot_gsi2pk.format_map(fields)},
            ":g2sk": {"S": config.snapshot_gsi2sk.format_map(fields)},
        }
        if config.snapshot_gsi4pk:
            values[":g4pk"] = {"S": config.snapshot_gsi4pk.format_map(fields)}
            values[":g4sk"] = {"S": config.snapshot_gsi4sk.format_map(fields)}
        if config.snapshot_ttl_days:
            expires = int(window_end(key.window_key, key.window).timestamp())
            values[":ttl"] = {"N": str(expires + config.snapshot_ttl_days * 86_400)}
        adds = ["#events :events"]
        for i, (name, amount) in enumerate(sorted(counters.items())):
            names[f"#c{i}"] = name
            values[f":c{i}"] = {"N": str(amount)}
            adds.append(f"#c{i} :c{i}")
        sets = [self._sets]
        conditions = []
        for i, source in enumerate(sorted(update.by_source)):
            contributions = update.by_source[source]
            names[f"#w{i}"] = watermark_attribute(source)
            values[f":w{i}"] = {"S": contributions[-1].position}
            values[f":f{i}"] = {"S": contributions[0].position}
            sets.append(f"#w{i} = :w{i}")
            conditions.append(f"(attribute_not_exists(#w{i}) OR #w{i} < :f{i})")
        return {
            "TableName": config.snapshot_table,
            "Key": snapshot_item_key(config, key),
            "UpdateExpression": f"{', '.join(sets)} ADD {', '.join(adds)}",
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _read_watermarks(self, key: Mapping[str, Any]) -> Mapping[str, Any]:
        """Fallback for endpoints that do not return the item on a failed condition."""
        try:
            response = self._client.get_item(
                TableName=self._config.snapshot_table, Key=key, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise to_store_error(exc, "snapshot watermark read") from exc
        return response.get("Item", {})


class BucketStore:
    """Writes refills to bucket items under the ``rf`` optimistic lock."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def refill(self, plan: RefillPlan) -> bool:
        """True when written; False when the bucket moved on (someone else refilled it)."""
        names = {"#rf": "rf"}
        values: dict[str, Any] = {
            ":rf": {"N": str(plan.refilled_at)}, ":expected": {"N": str(plan.expected_refilled_at)},
        }
        adds, pins = [], ["#rf = :expected"]
        for i, (name, delta) in enumerate(sorted(plan.deltas.items())):
            names[f"#t{i}"] = f"b_{name}_tk"
            values[f":d{i}"] = {"N": str(delta)}
            values[f":r{i}"] = {"N": str(plan.read_tokens[name])}
            adds.append(f"#t{i} :d{i}")
            pins.append(f"#t{i} <= :r{i}")
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"PK": {"S": plan.pk}, "SK": {"S": plan.sk}},
                UpdateExpression=f"SET #rf = :rf ADD {', '.join(adds)}",
                ConditionExpression=" AND ".join(pins),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                logger.debug("refill lost the rf race", extra={"pk": plan.pk})
                return False
            raise to_store_error(exc, "bucket refill") from exc
        except BotoCoreError as exc:
            raise to_store_error(exc, "bucket refill") from exc
        return True
