"""Bounds checked before any work: values no real source produces, rejected cheaply.

A record that parses can still carry a value the code after it cannot take: a time at
the end of the calendar (``0001-01-01T00:00:00+01:00`` overflows when moved to UTC), a
number of a million digits (``1e400000`` is 8 bytes, and turning it into an int takes
seconds), nesting deeper than the interpreter's recursion limit, a lone UTF-16
surrogate (what a JavaScript producer that slices an emoji sends), which no encoder
can write. Each check here costs a length test or one pass over the value, before
anything expensive runs, and raises :class:`MalformedRecordError` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .errors import MalformedRecordError
from .windows import EARLIEST_MS, LATEST_MS

MAX_DEPTH = 32
"""DynamoDB's nesting limit for maps and lists; no document of ours needs more."""
MAX_TIMESTAMP_CHARS = 64
"""The longest ISO 8601 text worth parsing (``2026-01-31T23:59:59.123456+05:30`` is 32)."""
MAX_DIGITS = 40
"""Significant digits of a number any source sends (DynamoDB keeps 38)."""
MAX_EXPONENT = 30
"""Largest decimal exponent of a number any source sends (epoch nanoseconds are 1e18)."""


def check_text(value: str, field: str) -> str:
    """``value`` if it is valid Unicode (encodable as UTF-8); ASCII is checked for free."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedRecordError(f"{field}: string is not valid Unicode ({exc.reason} "
                                   f"at {exc.start})") from None
    return value


def check_decimal(value: Decimal, field: str) -> Decimal:
    """``value`` if finite with at most :data:`MAX_DIGITS` digits and a modest exponent.

    ``adjusted()`` and the digit count are read from the number's parts, so ``1e400000``
    is rejected before any arithmetic could expand it.
    """
    if not value.is_finite():
        raise MalformedRecordError(f"{field}: number is not finite")
    if value and not -MAX_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        raise MalformedRecordError(f"{field}: number {_short(value)} is outside "
                                   f"1e-{MAX_EXPONENT}..1e{MAX_EXPONENT}")
    if len(value.as_tuple().digits) > MAX_DIGITS:
        raise MalformedRecordError(f"{field}: number has more than {MAX_DIGITS} digits")
    return value


def check_epoch_ms(value: int, field: str) -> int:
    """``value`` if the windows can represent it (see :data:`windows.LATEST_MS`)."""
    if not EARLIEST_MS <= value < LATEST_MS:
        raise MalformedRecordError(f"{field}: time {value} ms is outside 1970..9999")
    return value


def parse_instant(text: str, field: str, *, naive_utc: bool = False) -> datetime:
    """An aware UTC datetime from ISO 8601 text, within what the windows represent.

    A time without a zone is UTC with ``naive_utc``, malformed otherwise. The length is
    checked before parsing, and the move to UTC cannot overflow: a time that would is
    outside the bounds and rejected with the others.
    """
    if len(text) > MAX_TIMESTAMP_CHARS:
        raise MalformedRecordError(f"{field}: too long for a timestamp ({len(text)} chars)")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedRecordError(f"{field}: {text[:40]!r} is not an ISO 8601 time") \
            from None
    if moment.tzinfo is None:
        if not naive_utc:
            raise MalformedRecordError(f"{field}: ISO 8601 time needs a zone (Z or +hh:mm), "
                                       "it has no time zone")
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise MalformedRecordError(f"{field}: {text[:40]!r} is outside 1970..9999") from None
    check_epoch_ms(_epoch_ms(moment), field)
    return moment


def check_json(value: Any, field: str, *, max_depth: int = MAX_DEPTH) -> None:
    """A JSON document's limits: nesting, valid Unicode keys and strings, sane numbers.

    One pass with an explicit stack, so a document nested a million levels deep costs
    ``max_depth`` steps before it is rejected, never a ``RecursionError``.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, str):
            check_text(current, field)
        elif isinstance(current, Decimal):
            check_decimal(current, field)
        elif isinstance(current, float):
            check_decimal(Decimal(current), field)
        elif isinstance(current, int) and not isinstance(current, bool):
            if not -_INT_LIMIT < current < _INT_LIMIT:
                raise MalformedRecordError(f"{field}: number is outside "
                                           f"-1e{MAX_EXPONENT + 1}..1e{MAX_EXPONENT + 1}")
        elif isinstance(current, Mapping | list):
            if depth >= max_depth:
                raise MalformedRecordError(f"{field}: nested deeper than {max_depth} levels")
            if isinstance(current, Mapping):
                for key, inner in current.items():
                    if not isinstance(key, str):
                        raise MalformedRecordError(f"{field}: object key is not a string")
                    check_text(key, field)
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in current)


def _epoch_ms(moment: datetime) -> int:
    """Exact epoch milliseconds of an aware datetime (no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT_LIMIT = 10 ** (MAX_EXPONENT + 1)


def _short(value: Decimal) -> str:
    text = str(value)
    return text if len(text) <= 24 else text[:21] + "..."
