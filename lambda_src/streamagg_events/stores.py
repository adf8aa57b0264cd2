"""The event pipeline's DynamoDB adapters: lookups in, counters and unique users out.

Exactly-once counters
---------------------
Events carry ids, so every counted event leaves a *marker* item (``EVENT#<id>``). A
:class:`~streamagg_events.processor.Transaction` writes its events' markers, each
conditioned on ``attribute_not_exists``, and the ADDs of their counters in one
TransactWriteItems: a contribution lands with its marker or not at all. When the
transaction is cancelled because some markers exist (a redelivery, a bisected retry, a
write whose response was lost, a producer that sent an event twice), those events are
taken out, the ADDs recomputed from the others, and the transaction retried. Markers
are keyed by event id, not by stream position, so this holds whatever order lanes run in
(``ParallelizationFactor`` > 1) and across shards. Unique-user sets need no marker: a
string-set ADD of a member already there changes nothing.

The metrics table's key attribute names are settings (``key_attributes``: ``pk``/``sk``, or
seed 003's ``partition_key``/``sort_key``); every request here names them from the config.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamagg_engine.errors import StoreError
from streamagg_engine.stores import AWS_FAILURES, to_store_error
from streamagg_engine.windows import Window, window_end

from .config import EventMetricsConfig
from .processor import CounterKey, Transaction, UserSetUpdate

MARKER_SK = "MARKER"
_BATCH_GET_KEYS = 100
_UNPROCESSED_ROUNDS = 5
_MAX_CANCELLATIONS = 10
_RETRY_REASONS = frozenset({"TransactionConflict", "ThrottlingError",
                            "ProvisionedThroughputExceeded", "RequestLimitExceeded"})


def marker_pk(event_id: str) -> str:
    return f"EVENT#{event_id}"


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.05 * 2 ** attempt, 1.0)))


class LookupStore:
    """Reads lookup items by ``pk`` with BatchGetItem, 100 keys a request."""

    def __init__(self, client: Any, table_name: str, *, key_attribute: str = "pk") -> None:
        self._client = client
        self._table = table_name
        self._key = key_attribute

    def fetch(self, keys: Iterable[str]) -> Mapping[str, Mapping[str, Any]]:
        wanted = sorted(set(keys))
        found: dict[str, Mapping[str, Any]] = {}
        for start in range(0, len(wanted), _BATCH_GET_KEYS):
            request: dict[str, Any] = {self._table: {
                "Keys": [{self._key: {"S": k}} for k in wanted[start:start + _BATCH_GET_KEYS]]}}
            for attempt in range(_UNPROCESSED_ROUNDS):
                try:
                    response = self._client.batch_get_item(RequestItems=request)
                except AWS_FAILURES as exc:
                    raise to_store_error(exc, "lookup read") from exc
                for item in response.get("Responses", {}).get(self._table, []):
                    found[item[self._key]["S"]] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                _backoff(attempt)
            else:
                raise StoreError("lookup read: keys still unprocessed after retries",
                                 retryable=True, code="UnprocessedKeys")
        return found


class MetricsStore:
    """Commits transactions of markers and counters, and adds users to their sets."""

    def __init__(self, client: Any, config: EventMetricsConfig) -> None:
        self._client = client
        self._config = config

    def _key(self, pk: str, sk: str) -> dict[str, Any]:
        return {self._config.partition_key: {"S": pk}, self._config.sort_key: {"S": sk}}

    def commit(self, transaction: Transaction, now_ms: int) -> int:
        """Count what is new in ``transaction``; returns how many events were already counted."""
        pending = transaction
        for attempt in range(_MAX_CANCELLATIONS):
            if not pending.events:
                return len(transaction.events)
            try:
                self._client.transact_write_items(TransactItems=self._actions(pending, now_ms))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise to_store_error(exc, "counter transaction") from exc
                reasons = [str(r.get("Code", "")) for r in
                           exc.response.get("CancellationReasons", [])]
                counted = self._already_counted(pending, reasons)
                if counted:
                    pending = pending.without(counted)
                elif reasons and not any(code in _RETRY_REASONS for code in reasons):
                    raise to_store_error(exc, "counter transaction") from exc
                else:
                    _backoff(attempt)
                continue
            except BotoCoreError as exc:
                raise to_store_error(exc, "counter transaction") from exc
            return len(transaction.events) - len(pending.events)
        raise StoreError("counter transaction: still cancelled after retries",
                         retryable=True, code="TransactionCanceledException")

    def add_users(self, update: UserSetUpdate) -> None:
        names, values, sets = self._window_attributes(update.key)
        names["#users"] = "users"
        values[":users"] = {"SS": sorted(update.users)}
        try:
            self._client.update_item(
                TableName=self._config.metrics_table_name,
                Key=self._key(update.key.pk, update.sk),
                UpdateExpression=f"SET {', '.join(sets)} ADD #users :users",
                ExpressionAttributeNames=names, ExpressionAttributeValues=values,
            )
        except AWS_FAILURES as exc:
            raise to_store_error(exc, "unique-user update") from exc

    def _already_counted(self, pending: Transaction, reasons: Sequence[str]) -> set[str]:
        """Events whose marker exists: from the cancellation reasons (markers come first),
        or read back when the endpoint gave no reasons."""
        events = pending.events
        if reasons:
            return {events[i].enriched.event.event_id for i, code in enumerate(reasons)
                    if i < len(events) and code == "ConditionalCheckFailed"}
        table = self._config.metrics_table_name
        keys = [self._key(marker_pk(e.enriched.event.event_id), MARKER_SK) for e in events]
        found: set[str] = set()
        for start in range(0, len(keys), _BATCH_GET_KEYS):
            try:
                response = self._client.batch_get_item(RequestItems={table: {
                    "Keys": keys[start:start + _BATCH_GET_KEYS], "ConsistentRead": True}})
            except AWS_FAILURES as exc:
                raise to_store_error(exc, "marker read") from exc
            for item in response.get("Responses", {}).get(table, []):
                found.add(item[self._config.partition_key]["S"].removeprefix("EVENT#"))
            if response.get("UnprocessedKeys"):
                raise StoreError("marker read: unprocessed keys", retryable=True,
                                 code="UnprocessedKeys")
        return found

    def _actions(self, transaction: Transaction, now_ms: int) -> list[dict[str, Any]]:
        table = self._config.metrics_table_name
        expires = now_ms // 1000 + self._config.marker_ttl_days * 86_400
        actions: list[dict[str, Any]] = [{"Put": {
            "TableName": table,
            "Item": {**self._key(marker_pk(item.enriched.event.event_id), MARKER_SK),
                     "sequence_number": {"S": item.record.sequence_number},
                     "ttl": {"N": str(expires)}},
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": self._config.partition_key},
        }} for item in transaction.events]
        for key, amounts in sorted(transaction.counters().items()):
            actions.append({"Update": self._counter_update(key, amounts)})
        return actions

    def _counter_update(self, key: CounterKey, amounts: Mapping[str, Decimal],
                        ) -> dict[str, Any]:
        names, values, sets = self._window_attributes(key)
        adds = []
        for i, (name, amount) in enumerate(sorted(amounts.items())):
            names[f"#a{i}"] = name
            values[f":a{i}"] = {"N": str(amount)}
            adds.append(f"#a{i} :a{i}")
        return {
            "TableName": self._config.metrics_table_name,
            "Key": self._key(key.pk, key.sk),
            "UpdateExpression": f"SET {', '.join(sets)} ADD {', '.join(adds)}",
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
        }

    def _window_attributes(
        self, key: CounterKey
    ) -> tuple[dict[str, str], dict[str, Any], list[str]]:
        """The descriptive attributes every counter and user-set item carries, and its TTL."""
        names = {"#exp": "experiment_id", "#var": "variant", "#win": "window",
                 "#start": "window_start"}
        values: dict[str, Any] = {":exp": {"S": key.experiment_id}, ":var": {"S": key.variant},
                                  ":win": {"S": key.window}, ":start": {"S": key.window_key}}
        sets = ["#exp = :exp", "#var = :var", "#win = :win", "#start = :start"]
        days = self._config.metrics_ttl_days
        if days:
            end = int(window_end(key.window_key, Window(key.window)).timestamp())
            names["#ttl"] = "ttl"
            values[":ttl"] = {"N": str(end + days * 86_400)}
            sets.append("#ttl = if_not_exists(#ttl, :ttl)")
        return names, values, sets
