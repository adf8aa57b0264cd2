"""Lambda's event filtering, for the local event source mappings.

A deployed mapping's ``FilterCriteria`` decides which records reach the function at all:
a record matching none of the filters is dropped for good (a stream checkpoints past it,
a queue deletes it). Running the handler locally without them would test a function that
sees records the deployed one never sees, or miss records it would drop.

The rules are Lambda's (EventBridge's pattern syntax): every key of a pattern must match;
a nested object matches the record's object at that key; a list holds the allowed
values, any of which may match, and a record's list (of values or objects) matches if
any element does. Values match exactly (numbers by value), or by ``prefix``, ``suffix``,
``equals-ignore-case``, ``anything-but`` (values or a prefix), ``numeric`` ranges and
``exists``.

What a pattern sees of a record: a DynamoDB stream record as Lambda hands it over; a
Kinesis record with its base64 ``data`` decoded and, when it is JSON, parsed, under the
top-level key ``data``; an SQS message with its ``body`` parsed when it is JSON. A pattern
on the payload's fields never matches a payload that is not JSON, as in Lambda.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_COMPARISONS = {"=": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
                ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


@dataclass(frozen=True)
class Filters:
    """A mapping's filters; none lets every record through."""

    patterns: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_template(cls, properties: Mapping[str, Any]) -> Filters:
        """From an ``AWS::Lambda::EventSourceMapping``'s synthesized properties."""
        filters = properties.get("FilterCriteria", {}).get("Filters", [])
        return cls(tuple(json.loads(f["Pattern"]) for f in filters))

    def keeps(self, record: Mapping[str, Any]) -> bool:
        if not self.patterns:
            return True
        seen = filter_view(record)
        return any(matches(pattern, seen) for pattern in self.patterns)


def filter_view(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The record as Lambda's filters see it (payloads decoded, see the module docstring)."""
    source = record.get("eventSource")
    if source == "aws:kinesis":
        return {**record, "data": _payload(_decoded(str(record["kinesis"]["data"])))}
    if source == "aws:sqs":
        return {**record, "body": _payload(str(record["body"]))}
    return record


def _decoded(data: str) -> str:
    try:
        return base64.b64decode(data, validate=True).decode()
    except (binascii.Error, ValueError):
        return data


def _payload(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def matches(pattern: Mapping[str, Any], value: Any) -> bool:
    """Whether ``value`` (a record, or an object inside one) matches ``pattern``."""
    if not isinstance(value, Mapping):
        return False
    for name, rule in pattern.items():
        if name.startswith("$"):
            raise NotImplementedError(f"filter operator {name!r} is not emulated")
        if isinstance(rule, Mapping):
            if name not in value or not _nested(rule, value[name]):
                return False
        elif isinstance(rule, list):
            if not _field(rule, name in value, value.get(name)):
                return False
        else:
            raise TypeError(f"filter pattern: {name!r} must hold an object or a list")
    return True


def _nested(pattern: Mapping[str, Any], value: Any) -> bool:
    """An object pattern against an object, or against a list: any element may match."""
    if isinstance(value, list):
        return any(matches(pattern, element) for element in value)
    return matches(pattern, value)


def _field(rules: Sequence[Any], present: bool, value: Any) -> bool:
    if not present:
        return any(isinstance(rule, Mapping) and rule.get("exists") is False for rule in rules)
    candidates = value if isinstance(value, list) else [value]
    return any(_rule(rule, candidate) for rule in rules for candidate in candidates)


def _rule(rule: Any, value: Any) -> bool:
    if not isinstance(rule, Mapping):
        return _same(rule, value)
    ((operator, argument),) = rule.items()
    if operator == "exists":
        return argument is True
    if operator == "prefix":
        return _text(value, argument, str.startswith)
    if operator == "suffix":
        return _text(value, argument, str.endswith)
    if operator == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == str(argument).casefold()
    if operator == "anything-but":
        if isinstance(argument, Mapping):
            return not _rule(argument, value)
        excluded = argument if isinstance(argument, list) else [argument]
        return not any(_same(other, value) for other in excluded)
    if operator == "numeric":
        return _numeric(argument, value)
    raise NotImplementedError(f"filter operator {operator!r} is not emulated")


def _same(rule: Any, value: Any) -> bool:
    """Equality as the filters see it: numbers by value, but never a bool for a number."""
    if isinstance(rule, bool) or isinstance(value, bool):
        return rule is value
    if _is_number(rule) and _is_number(value):
        return float(rule) == float(value)
    return type(rule) is type(value) and bool(rule == value)


def _text(value: Any, argument: Any, test: Any) -> bool:
    return isinstance(value, str) and isinstance(argument, str) and bool(test(value, argument))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric(bounds: Sequence[Any], value: Any) -> bool:
    if not _is_number(value):
        return False
    pairs = zip(bounds[::2], bounds[1::2], strict=True)
    return all(_COMPARISONS[operator](float(value), float(limit)) for operator, limit in pairs)
