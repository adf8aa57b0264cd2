"""Bucket maintenance by zae-limiter's own aggregator code: refill, the sharding backstop
and shard-count propagation.

zae-limiter's refill keeps the invariants of every 0.17 feature (schedules and their time
zones, reset schedules and quota grants, duration windows, ``vu`` stamps, top-ups, the
``wcu`` limit that is never divided by the shard count); reimplementing it would mean
chasing each of them. So this module runs upstream's functions, in the order of its
``process_stream_records`` minus the snapshots (ours stay exact under redelivery):
``aggregate_bucket_states`` over a batch's bucket records, then per bucket
``try_refill_bucket`` and, for a bucket with a ``wcu`` limit, ``try_proactive_shard``;
then ``propagate_shard_count`` per record whose shard count grew.

Upstream calls a boto3 ``Table`` resource. A resource cannot sit on the aggregator's own
client: it registers its value (de)serializers on that client's event hooks, which would
then rewrite the snapshot store's typed requests. :class:`NativeTable` is the part of the
resource those functions use, applying boto3's own transformer around the client's calls:
same credentials, endpoint, connection pool and retry settings, and no state, so the
batch's worker threads share it (boto3 resources are not thread-safe; clients are).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from boto3.dynamodb.transform import TransformationInjector
from botocore.exceptions import ClientError
from zae_limiter.schema import WCU_LIMIT_NAME, pk_bucket
from zae_limiter_aggregator import processor
from zae_limiter_aggregator.processor import (
    BucketRefillState,
    aggregate_bucket_states,
    propagate_shard_count,
    try_proactive_shard,
    try_refill_bucket,
)

from streamagg_engine.errors import StoreError
from streamagg_engine.stores import AWS_FAILURES, to_store_error

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

RefillOutcome = Literal["written", "lost_race", "not_needed"]
_CONDITION_FAILED = "ConditionalCheckFailedException"

__all__ = ["BucketMaintenance", "BucketRefillState", "NativeTable", "RefillOutcome",
           "bucket_states", "grows_shards", "has_wcu", "state_pk"]


def bucket_states(records: Iterable[Mapping[str, Any]]) -> list[BucketRefillState]:
    """Each bucket's newest state in the batch, with what the batch consumed (upstream's).

    Pure. Only MODIFY records count; one upstream cannot parse is logged and left out.
    """
    return list(aggregate_bucket_states(list(records)).values())


def has_wcu(state: BucketRefillState) -> bool:
    """Whether upstream's sharding backstop applies: the bucket has a ``wcu`` limit."""
    return WCU_LIMIT_NAME in state.limits


def state_pk(state: BucketRefillState) -> str:
    """The bucket item's partition key, for log lines."""
    return pk_bucket(state.namespace_id, state.entity_id, state.resource, state.shard_id)


def grows_shards(record: Mapping[str, Any]) -> bool:
    """Whether a record raised an item's ``shard_count``: the only records upstream's
    propagation acts on (it answers 0 for the rest without a request)."""
    body = record.get("dynamodb")
    if not isinstance(body, Mapping):
        return False
    counts = [_shard_count(body.get(image)) for image in ("OldImage", "NewImage")]
    old, new = counts
    return old is not None and new is not None and new > old


def _shard_count(image: Any) -> int | None:
    value = image.get("shard_count") if isinstance(image, Mapping) else None
    number = value.get("N") if isinstance(value, Mapping) else None
    return int(number) if isinstance(number, str) and number.isdigit() else None


class NativeTable:
    """The slice of a boto3 ``Table`` resource upstream's maintenance calls, over a client.

    ``update_item`` and ``get_item`` take and return native values (``int``, ``str``,
    ``Decimal``) as the resource's do; ``meta.client.transact_write_items`` does too, as
    the resource's client does. The conversion is boto3's own
    :class:`~boto3.dynamodb.transform.TransformationInjector`, one per call (its
    condition builder counts placeholders).
    """

    def __init__(self, client: DynamoDBClient, name: str) -> None:
        self._client = client
        self.name = name
        self.meta = self
        """``table.meta.client`` is where upstream finds ``transact_write_items``."""
        self.client = self

    def update_item(self, **params: Any) -> dict[str, Any]:
        return self._call("UpdateItem", {"TableName": self.name, **params})

    def get_item(self, **params: Any) -> dict[str, Any]:
        return self._call("GetItem", {"TableName": self.name, **params})

    def transact_write_items(self, **params: Any) -> dict[str, Any]:
        return self._call("TransactWriteItems", params)

    def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        # (boto3-stubs type the model as a resource model; the hooks get an operation's)
        model: Any = self._client.meta.service_model.operation_model(operation)
        injector = TransformationInjector()
        params = copy.deepcopy(params)
        injector.inject_condition_expressions(params, model)
        injector.inject_attribute_value_input(params, model)
        parsed: dict[str, Any] = getattr(self._client, _METHODS[operation])(**params)
        injector.inject_attribute_value_output(parsed, model)
        return parsed


_METHODS = {"UpdateItem": "update_item", "GetItem": "get_item",
          "TransactWriteItems": "transact_write_items"}


class _Watched:
    """A table that remembers whether an update it sent was refused by its condition:
    upstream answers False both for "nothing to do" and for a lost ``rf`` race."""

    def __init__(self, table: NativeTable) -> None:
        self._table = table
        self.refused = False

    def update_item(self, **params: Any) -> dict[str, Any]:
        try:
            return self._table.update_item(**params)
        except ClientError as exc:
            self.refused = exc.response.get("Error", {}).get("Code") == _CONDITION_FAILED
            raise


_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class UpstreamLog:
    """zae-limiter's aggregator logs through a logger of its own that prints every line,
    DEBUG included (one or two per bucket per batch). This one has its interface and
    writes through ours instead, so ``log_level`` applies and each line carries the
    invocation's fields."""

    def debug(self, message: str, **extra: Any) -> None:
        self._log(logging.DEBUG, message, False, extra)

    def info(self, message: str, **extra: Any) -> None:
        self._log(logging.INFO, message, False, extra)

    def warning(self, message: str, exc_info: bool = False, **extra: Any) -> None:
        self._log(logging.WARNING, message, exc_info, extra)

    def error(self, message: str, exc_info: bool = False, **extra: Any) -> None:
        self._log(logging.ERROR, message, exc_info, extra)

    @staticmethod
    def _log(level: int, message: str, exc_info: bool, extra: dict[str, Any]) -> None:
        if logger.isEnabledFor(level):
            logger.log(level, message, exc_info=exc_info, extra={
                f"upstream_{k}" if k in _RESERVED else k: v for k, v in extra.items()})


class BucketMaintenance:
    """Upstream's refill, sharding backstop and propagation against one table.

    Every failure is a :class:`StoreError`: AWS's sorted by
    :func:`~streamagg_engine.stores.to_store_error` (so a throttled write is retried like
    any other), and any other exception upstream's code raises on an item it cannot
    handle as a permanent one, because maintenance must only ever cost itself, never
    the batch.
    """

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._table = NativeTable(client, table_name)
        processor.logger = UpstreamLog()  # the module's one logger; see UpstreamLog

    def refill(self, state: BucketRefillState, now_ms: int) -> RefillOutcome:
        watched = _Watched(self._table)
        if _guarded("bucket refill", try_refill_bucket, watched, state, now_ms):
            return "written"
        return "lost_race" if watched.refused else "not_needed"

    def shard(self, state: BucketRefillState, now_ms: int) -> bool:
        """True when shard 0's ``wcu`` ran under 20 % and its ``shard_count`` was doubled."""
        wcu = state.limits[WCU_LIMIT_NAME]
        return bool(_guarded(
            "proactive shard", try_proactive_shard, self._table, state,
            wcu_tk_milli=wcu.tk_milli, wcu_capacity_milli=wcu.cp_milli,
            wcu_refill_amount_milli=wcu.ra_milli, wcu_refill_period_ms=wcu.rp_ms,
            now_ms=now_ms))

    def propagate(self, record: Mapping[str, Any], now_ms: int) -> int:
        """Shard items restamped or created after shard 0's ``shard_count`` grew."""
        return int(_guarded("shard propagation", propagate_shard_count, self._table,
                            record, now_ms))


def _guarded(action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except AWS_FAILURES as exc:
        raise to_store_error(exc, action) from exc
    except Exception as exc:  # upstream's code on an item it cannot handle: see the class
        raise StoreError(f"{action}: {type(exc).__name__}: {exc}", retryable=False,
                         code=type(exc).__name__) from exc
