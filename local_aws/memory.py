"""In-memory DynamoDB and S3 clients for the requests the aggregator makes.

The fault-injection proof pushes hundreds of thousands of records through the real
handler; moto's HTTP server would take hours for that, so these fakes answer the same
requests in microseconds. They implement only the subset of the wire API the adapters
in ``aggregator.stores`` send (``UpdateItem`` with ``SET``/``ADD``/``if_not_exists`` and
conjunctions of comparisons and ``attribute_not_exists``; ``GetItem``; ``PutObject``),
and raise on anything else rather than guess. A contract test runs the same traffic
through these and through moto's server and compares the resulting tables.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, cast

from botocore.exceptions import ClientError

Item = dict[str, dict[str, Any]]

_SET_ITEM = re.compile(r"^(#\w+)\s*=\s*(?:if_not_exists\((#\w+),\s*(:\w+)\)|(:\w+))$")
_ADD_ITEM = re.compile(r"^(#\w+)\s+(:\w+)$")
_NOT_EXISTS = re.compile(r"^attribute_not_exists\((#\w+)\)$")
_COMPARISON = re.compile(r"^(#\w+)\s*(<=|>=|<>|<|>|=)\s*(:\w+)$")


class MemoryDynamoDB:
    """A thread-safe table store answering ``update_item``, ``get_item`` and ``put_item``."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[str, str], Item]] = {}
        self._lock = threading.Lock()
        self.calls = 0

    def put_item(self, *, TableName: str, Item: Item) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            self.tables.setdefault(TableName, {})[_key(Item)] = _copy(Item)
        return {}

    def get_item(self, *, TableName: str, Key: Item, ConsistentRead: bool = False,
                 **_: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            item = self.tables.get(TableName, {}).get(_key(Key))
            return {"Item": _copy(item)} if item is not None else {}

    def update_item(self, *, TableName: str, Key: Item, UpdateExpression: str,
                    ExpressionAttributeNames: Mapping[str, str],
                    ExpressionAttributeValues: Mapping[str, Any],
                    ConditionExpression: str | None = None,
                    ReturnValuesOnConditionCheckFailure: str | None = None) -> dict[str, Any]:
        names, values = ExpressionAttributeNames, ExpressionAttributeValues
        with self._lock:
            self.calls += 1
            table = self.tables.setdefault(TableName, {})
            stored = table.get(_key(Key))
            item = _copy(stored) if stored is not None else _copy(Key)
            if ConditionExpression and not _condition(ConditionExpression, stored or {},
                                                      names, values):
                response: dict[str, Any] = {"Error": {
                    "Code": "ConditionalCheckFailedException",
                    "Message": "The conditional request failed"}}
                if ReturnValuesOnConditionCheckFailure == "ALL_OLD" and stored is not None:
                    response["Item"] = _copy(stored)
                raise ClientError(cast(Any, response), "UpdateItem")
            _apply(UpdateExpression, item, names, values)
            table[_key(Key)] = item
        return {}

    def items(self, table: str) -> list[Item]:
        with self._lock:
            return [_copy(item) for item in self.tables.get(table, {}).values()]


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


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    return (item["PK"]["S"], item["SK"]["S"])


def _copy(item: Mapping[str, Any] | None) -> Item:
    return {k: dict(v) for k, v in (item or {}).items()}


def _split(expression: str, separator: str) -> list[str]:
    """Split at ``separator`` outside parentheses (``if_not_exists(a, b)`` stays whole)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(expression):
        depth += (char == "(") - (char == ")")
        if depth == 0 and expression.startswith(separator, index):
            parts.append(expression[start:index])
            start = index + len(separator)
    parts.append(expression[start:])
    return [part.strip() for part in parts if part.strip()]


def _apply(expression: str, item: Item, names: Mapping[str, str],
           values: Mapping[str, Any]) -> None:
    match = re.fullmatch(r"SET (?P<set>.+?)(?: ADD (?P<add>.+))?", expression.strip())
    if match is None:
        raise NotImplementedError(f"update expression not supported: {expression!r}")
    for clause in _split(match.group("set"), ","):
        parsed = _SET_ITEM.match(clause)
        if parsed is None:
            raise NotImplementedError(f"SET clause not supported: {clause!r}")
        target, guarded, fallback, plain = parsed.groups()
        name = names[target]
        if guarded is not None:
            if names[guarded] not in item:
                item[name] = dict(values[fallback])
        else:
            item[name] = dict(values[plain])
    for clause in _split(match.group("add") or "", ","):
        parsed = _ADD_ITEM.match(clause)
        if parsed is None:
            raise NotImplementedError(f"ADD clause not supported: {clause!r}")
        name, amount = names[parsed.group(1)], Decimal(values[parsed.group(2)]["N"])
        current = Decimal(item[name]["N"]) if name in item else Decimal(0)
        item[name] = {"N": str(current + amount)}


def _condition(expression: str, item: Item, names: Mapping[str, str],
               values: Mapping[str, Any]) -> bool:
    return all(_disjunction(term.strip().strip("()"), item, names, values)
               for term in _split(expression, " AND "))


def _disjunction(term: str, item: Item, names: Mapping[str, str],
                 values: Mapping[str, Any]) -> bool:
    for atom in _split(term, " OR "):
        missing = _NOT_EXISTS.match(atom)
        if missing is not None:
            if names[missing.group(1)] not in item:
                return True
            continue
        comparison = _COMPARISON.match(atom)
        if comparison is None:
            raise NotImplementedError(f"condition not supported: {atom!r}")
        name, operator, placeholder = comparison.groups()
        stored = item.get(names[name])
        if stored is not None and _compare(stored, operator, values[placeholder]):
            return True
    return False


def _compare(left: Mapping[str, str], operator: str, right: Mapping[str, str]) -> bool:
    if "N" in left and "N" in right:
        a: Any = Decimal(left["N"])
        b: Any = Decimal(right["N"])
    elif "S" in left and "S" in right:
        a, b = left["S"], right["S"]
    else:
        return False
    return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "=": a == b,
                 "<>": a != b}[operator])
