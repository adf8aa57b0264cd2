"""In-memory DynamoDB and S3 clients for the requests the four pipelines make.

The fault-injection proofs push hundreds of thousands of records through the real
handlers; moto's HTTP server would take hours for that, so these fakes answer the same
requests in microseconds. :class:`MemoryDynamoDB` answers every request shape the
pipelines' adapters (``lambda_src/*/stores.py``) send, through one expression parser
(:mod:`local_aws.expressions`): ``UpdateItem`` (``SET`` with ``if_not_exists``, ``ADD`` of
numbers and sets, conditions), ``GetItem``, ``PutItem``/``DeleteItem`` with conditions,
``BatchGetItem``, ``BatchWriteItem`` (at most 25 requests, no key twice) and
``TransactWriteItems`` with DynamoDB's cancellation reasons. Anything else raises rather
than guess. Contract tests run the same traffic here and on moto's server and compare the
tables.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from botocore.exceptions import ClientError

from local_aws.expressions import Item, Names, Values, condition, update

Key = tuple[str, ...]


def table_definition(name: str, hash_key: str, range_key: str | None = None) -> dict[str, Any]:
    """``create_table``'s arguments for a table of string keys, for moto and this fake alike,
    so a contract test declares each table once."""
    keys = [(hash_key, "HASH")] + ([(range_key, "RANGE")] if range_key else [])
    return {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": n, "KeyType": t} for n, t in keys],
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"}
                                     for n, _ in keys]}


def _error(code: str, message: str, operation: str, **extra: Any) -> ClientError:
    return ClientError(cast(Any, {"Error": {"Code": code, "Message": message}, **extra}),
                       operation)


class _Table:
    def __init__(self, key_names: Sequence[str]) -> None:
        self.key_names = tuple(key_names)
        self.items: dict[Key, Item] = {}

    def key(self, item: Mapping[str, Any], operation: str, *, exact: bool) -> Key:
        """The item's primary key; with ``exact``, ``item`` must be the key and nothing else."""
        if exact and set(item) != set(self.key_names):
            raise _error("ValidationException",
                         "The provided key element does not match the schema", operation)
        try:
            return tuple(next(iter(item[name].values())) for name in self.key_names)
        except KeyError:
            raise _error("ValidationException", "One of the required keys was not given a "
                         "value", operation) from None


class MemoryDynamoDB:
    """Tables made by :meth:`create_table`; every request is atomic under one lock."""

    def __init__(self) -> None:
        self._tables: dict[str, _Table] = {}
        self._lock = threading.Lock()
        self.calls = 0
        """Requests answered (what a proof reports as writes and reads)."""

    def create_table(self, *, TableName: str, KeySchema: Sequence[Mapping[str, str]],
                     **_: Any) -> dict[str, Any]:
        ordered = sorted(KeySchema, key=lambda k: k["KeyType"] != "HASH")
        with self._lock:
            self._tables[TableName] = _Table([k["AttributeName"] for k in ordered])
        return {}

    def items(self, table: str) -> list[Item]:
        with self._lock:
            return [_copy(item) for item in self._table(table, "Scan").items.values()]

    # --- single-item requests ---------------------------------------------------------

    def get_item(self, *, TableName: str, Key: Item, **_: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            table = self._table(TableName, "GetItem")
            found = table.items.get(table.key(Key, "GetItem", exact=True))
            return {"Item": _copy(found)} if found is not None else {}

    def put_item(self, *, TableName: str, Item: Item, **request: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            table = self._table(TableName, "PutItem")
            key = table.key(Item, "PutItem", exact=False)
            self._check(table, key, request, "PutItem")
            table.items[key] = _copy(Item)
        return {}

    def delete_item(self, *, TableName: str, Key: Item, **request: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            table = self._table(TableName, "DeleteItem")
            key = table.key(Key, "DeleteItem", exact=True)
            self._check(table, key, request, "DeleteItem")
            table.items.pop(key, None)
        return {}

    def update_item(self, *, TableName: str, Key: Item, **request: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            table = self._table(TableName, "UpdateItem")
            key = table.key(Key, "UpdateItem", exact=True)
            self._check(table, key, request, "UpdateItem")
            table.items[key] = _updated(table.items.get(key), Key, request)
        return {}

    # --- batches and transactions -----------------------------------------------------

    def batch_get_item(self, *, RequestItems: Mapping[str, Mapping[str, Any]],
                       ) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            if sum(len(r["Keys"]) for r in RequestItems.values()) > 100:
                raise _error("ValidationException", "Too many items requested for the "
                             "BatchGetItem call", "BatchGetItem")
            responses: dict[str, list[Item]] = {}
            for name, request in RequestItems.items():
                table = self._table(name, "BatchGetItem")
                found = (table.items.get(table.key(k, "BatchGetItem", exact=True))
                         for k in request["Keys"])
                responses[name] = [_copy(item) for item in found if item is not None]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def batch_write_item(self, *, RequestItems: Mapping[str, Sequence[Mapping[str, Any]]],
                         ) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            writes: list[tuple[_Table, Key, Item | None]] = []
            for name, requests in RequestItems.items():
                table = self._table(name, "BatchWriteItem")
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        writes.append((table, table.key(item, "BatchWriteItem", exact=False),
                                       item))
                    else:
                        key = request["DeleteRequest"]["Key"]
                        writes.append((table, table.key(key, "BatchWriteItem", exact=True),
                                       None))
            keys = [(id(table), key) for table, key, _ in writes]
            if not 0 < len(writes) <= 25 or len(set(keys)) != len(keys):
                raise _error("ValidationException", "Provided list of item keys contains "
                             "duplicates, or not 1 to 25 requests", "BatchWriteItem")
            for table, key, item in writes:
                if item is None:
                    table.items.pop(key, None)
                else:
                    table.items[key] = _copy(item)
        return {"UnprocessedItems": {}}

    def transact_write_items(self, *, TransactItems: Sequence[Mapping[str, Any]],
                             **_: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            actions: list[tuple[str, _Table, Key, Mapping[str, Any]]] = []
            for action in TransactItems:
                ((kind, request),) = action.items()
                if kind not in _TRANSACT_WRITES:
                    raise NotImplementedError(f"TransactWriteItems action {kind!r}")
                table = self._table(request["TableName"], "TransactWriteItems")
                key = table.key(request["Item"], "TransactWriteItems", exact=False) \
                    if kind == "Put" else table.key(request["Key"], "TransactWriteItems",
                                                    exact=True)
                actions.append((kind, table, key, request))
            targets = [(id(table), key) for _, table, key, _ in actions]
            if len(set(targets)) != len(targets):
                raise _error("ValidationException", "Transaction request cannot include "
                             "multiple operations on one item", "TransactWriteItems")
            reasons = [self._reason(table, key, request) for _, table, key, request in actions]
            if any(reason["Code"] != "None" for reason in reasons):
                raise _error("TransactionCanceledException", "Transaction cancelled, please "
                             "refer cancellation reasons for specific reasons",
                             "TransactWriteItems", CancellationReasons=reasons)
            for kind, table, key, request in actions:
                _TRANSACT_WRITES[kind](table, key, request)
        return {}

    # --- shared steps -------------------------------------------------------------------

    def _table(self, name: str, operation: str) -> _Table:
        table = self._tables.get(name)
        if table is None:
            raise _error("ResourceNotFoundException", "Requested resource not found",
                         operation)
        return table

    def _check(self, table: _Table, key: Key, request: Mapping[str, Any],
               operation: str) -> None:
        """Raise DynamoDB's ConditionalCheckFailedException if the request's condition fails."""
        reason = self._reason(table, key, request)
        if reason["Code"] != "None":
            extra = {"Item": reason["Item"]} if "Item" in reason else {}
            raise _error("ConditionalCheckFailedException", "The conditional request failed",
                         operation, **extra)

    def _reason(self, table: _Table, key: Key, request: Mapping[str, Any]) -> dict[str, Any]:
        """A transaction's cancellation reason for one action (``None`` when it holds)."""
        expression = request.get("ConditionExpression")
        stored = table.items.get(key)
        if expression is None or condition(expression, stored or {}, _names(request),
                                           _values(request)):
            return {"Code": "None"}
        reason: dict[str, Any] = {"Code": "ConditionalCheckFailed",
                                  "Message": "The conditional request failed"}
        if request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and stored:
            reason["Item"] = _copy(stored)
        return reason



def _updated(stored: Item | None, key: Item, request: Mapping[str, Any]) -> Item:
    item: Item = _copy(stored) if stored is not None else _copy(key)
    update(request["UpdateExpression"], item, _names(request), _values(request))
    return item


def _put(table: _Table, key: Key, request: Mapping[str, Any]) -> None:
    table.items[key] = _copy(request["Item"])


def _update(table: _Table, key: Key, request: Mapping[str, Any]) -> None:
    table.items[key] = _updated(table.items.get(key), request["Key"], request)


def _delete(table: _Table, key: Key, request: Mapping[str, Any]) -> None:
    table.items.pop(key, None)


def _check_only(table: _Table, key: Key, request: Mapping[str, Any]) -> None:
    """A ConditionCheck writes nothing; its condition was checked with the others."""


_TRANSACT_WRITES: dict[str, Callable[[_Table, Key, Mapping[str, Any]], None]] = {
    "Put": _put, "Update": _update, "Delete": _delete, "ConditionCheck": _check_only}


def _names(request: Mapping[str, Any]) -> Names:
    return cast(Names, request.get("ExpressionAttributeNames") or {})


def _values(request: Mapping[str, Any]) -> Values:
    return cast(Values, request.get("ExpressionAttributeValues") or {})


def _copy(value: Any) -> Any:
    """A deep copy of DynamoDB JSON (dicts, lists, scalars), faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class MemoryS3:
    """``put_object`` into a dict; the last write of a key wins, as in S3."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.puts = 0
        self._lock = threading.Lock()

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        with self._lock:
            self.puts += 1
            self.objects[(Bucket, Key)] = bytes(Body)
        return {}
