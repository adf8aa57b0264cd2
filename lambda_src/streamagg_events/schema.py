"""The declared event schema, checked field by field (pure Python, no pydantic).

Why not Pydantic v2: its validation core is a compiled extension (pydantic-core) that must
be bundled per platform and architecture, which this project cannot build without Docker,
and it would multiply the asset's size and cold-start import time for eight fields. This
module declares the same contract (:data:`EVENT_SCHEMA`, one :class:`Field` per attribute:
type, required or default, bounds, pattern) and reports every violated field at once, in
the words a producer can act on: ``schema: user_id: required; value: must be a number``.

Numbers are read from JSON as :class:`~decimal.Decimal`, so sums are exact; a value must
be finite with at most 6 decimal places and magnitude below 10^12, which keeps any sum of
a window's events within DynamoDB's 38 significant digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from streamagg_engine.bounds import check_decimal, check_json, parse_instant
from streamagg_engine.errors import MalformedRecordError

_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_MIN_MS = 946_684_800_000  # 2000-01-01
_MAX_MS = 4_102_444_800_000  # 2100-01-01
_MAX_VALUE = Decimal(10) ** 12
_MAX_DIGITS = 40
"""A value within 10^12 with 6 decimals has 18 digits; a longer one is not a value."""


@dataclass(frozen=True, slots=True)
class Event:
    """A valid event: what the counters and the archive are made of."""

    event_id: str
    event_type: str
    user_id: str
    experiment_id: str
    timestamp_ms: int
    value: Decimal
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class Field:
    """One attribute: how to check and convert it; ``required`` or its ``default``."""

    name: str
    check: Callable[[Any], Any]
    """Returns the converted value, or raises TypeError/ValueError saying what is wrong."""
    required: bool = True
    default: Any = None


def identifier(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"must be a string, got {type(value).__name__}")
    if not _ID.fullmatch(value):
        raise ValueError("must be 1-128 letters, digits or ._:@/+=-")
    return value


def timestamp_ms(value: Any) -> int:
    """ISO 8601 with a zone (``2026-01-31T23:59:59.5Z``) or epoch milliseconds.

    Bounds come before arithmetic: a number's exponent is read before it is turned into
    an int (``1e400000`` would take seconds), and a time at the ends of the calendar is
    rejected before it is moved to UTC. Every failure is a ValueError.
    """
    if isinstance(value, str):
        try:
            moment = parse_instant(value, "timestamp")
        except MalformedRecordError as exc:
            raise ValueError(exc.reason.removeprefix("timestamp: ")) from None
        millis = int(moment.timestamp() * 1000)
    elif isinstance(value, int) and not isinstance(value, bool):
        millis = value
    elif isinstance(value, Decimal):
        try:
            check_decimal(value, "timestamp")
        except MalformedRecordError:
            raise ValueError("must be between 2000 and 2100") from None
        if value != value.to_integral_value():
            raise ValueError("must be whole epoch milliseconds")
        millis = int(value)
    else:
        raise TypeError("must be an ISO 8601 string or epoch milliseconds")
    if not _MIN_MS <= millis < _MAX_MS:
        raise ValueError("must be between 2000 and 2100")
    return millis


def amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise TypeError("must be a number")
    if isinstance(value, Decimal) and value.is_finite() and \
            len(value.as_tuple().digits) > _MAX_DIGITS:
        raise ValueError(f"must have at most {_MAX_DIGITS} digits")
    number = Decimal(value)
    if not number.is_finite() or abs(number) >= _MAX_VALUE:
        raise ValueError("must be finite and below 10^12 in magnitude")
    if number != number.quantize(Decimal("0.000001")):
        raise ValueError("must have at most 6 decimal places")
    return number.normalize() if number else Decimal(0)


def json_object(value: Any) -> Mapping[str, Any]:
    """A free-form object, within DynamoDB's nesting and valid Unicode throughout: it
    goes to the archive as it came, and an encoder must be able to write it."""
    if not isinstance(value, dict):
        raise TypeError("must be an object")
    try:
        check_json(value, "properties")
    except MalformedRecordError as exc:
        raise ValueError(exc.reason.removeprefix("properties: ")) from None
    return value


def one_of(allowed: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"{str(value)[:40]!r} is not one of {', '.join(allowed)}")
        return str(value)
    return check


def event_schema(event_types: tuple[str, ...]) -> tuple[Field, ...]:
    """The schema; ``event_types`` is the configured list of accepted types."""
    return (
        Field("event_id", identifier),
        Field("event_type", one_of(event_types)),
        Field("user_id", identifier),
        Field("experiment_id", identifier),
        Field("timestamp", timestamp_ms),
        Field("value", amount, required=False, default=Decimal(0)),
        Field("properties", json_object, required=False, default={}),
    )


def validate(document: Any, schema: tuple[Field, ...]) -> Event:
    """An :class:`Event`, or MalformedRecordError naming every violated field.

    Unknown top-level fields are ignored (producers may add fields before consumers
    know them); ``properties`` carries free-form data through to the archive.
    """
    if not isinstance(document, dict):
        raise MalformedRecordError(f"schema: event must be a JSON object, got "
                                   f"{type(document).__name__}")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in schema:
        if field.name not in document or document[field.name] is None:
            if field.required:
                problems.append(f"{field.name}: required")
            else:
                values[field.name] = field.default
            continue
        try:
            values[field.name] = field.check(document[field.name])
        except (TypeError, ValueError) as exc:
            problems.append(f"{field.name}: {exc}")
    if problems:
        raise MalformedRecordError("schema: " + "; ".join(problems))
    return Event(event_id=values["event_id"], event_type=values["event_type"],
                 user_id=values["user_id"], experiment_id=values["experiment_id"],
                 timestamp_ms=values["timestamp"], value=values["value"],
                 properties=values["properties"])
