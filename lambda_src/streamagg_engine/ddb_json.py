"""DynamoDB JSON, as it arrives in stream records, read without boto3.

Two ways in: the hot path reads the few attributes it needs (``get_string``,
``get_integer``) straight from the wire format; the archive turns a whole image into
plain JSON values (``to_plain``). Both reject anything DynamoDB itself would not
produce, with a reason that says what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from .bounds import MAX_DEPTH, check_text
from .errors import MalformedRecordError

Image = Mapping[str, Any]
PlainValue = Any  # str | int | float | bool | None | list[PlainValue] | dict[str, PlainValue]

_INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,37})")
# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 to 9.99E+125.
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_DESCRIPTORS = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})


def get_string(image: Image, name: str) -> str | None:
    """The ``S`` value of attribute ``name``, or None when the attribute is absent."""
    value = image.get(name)
    if value is None:
        return None
    text = value.get("S") if isinstance(value, dict) and len(value) == 1 else None
    if not isinstance(text, str):
        raise MalformedRecordError(f"attribute {name!r} is not a DynamoDB string")
    # Strings become keys and archive lines: one that cannot be encoded stops here.
    return text if text.isascii() else check_text(text, f"attribute {name!r}")


def get_integer(image: Image, name: str) -> int | None:
    """The ``N`` value of attribute ``name`` as an exact integer, or None when absent."""
    value = image.get(name)
    if value is None:
        return None
    digits = value.get("N") if isinstance(value, dict) and len(value) == 1 else None
    if isinstance(digits, str):
        # The common case without the regex: only ASCII digits, no leading zero.
        if digits.isdigit() and digits.isascii():
            if (digits[0] != "0" and len(digits) <= 38) or digits == "0":
                return int(digits)
        elif _INTEGER.fullmatch(digits):
            return int(digits)
    raise MalformedRecordError(f"attribute {name!r} is not a whole DynamoDB number: {value!r}")


def to_plain(image: Image) -> dict[str, PlainValue]:
    """A whole image as JSON-ready values (numbers exact: int or float, sets sorted)."""
    if not isinstance(image, Mapping):
        raise MalformedRecordError("image is not a map")
    return {_name(k, ""): _plain(v, str(k)) for k, v in image.items()}


def _name(key: Any, path: str) -> str:
    """A map key as JSON text: a string, valid Unicode."""
    if type(key) is str and key.isascii():
        return key
    if not isinstance(key, str):
        raise MalformedRecordError(f"{path}: map key is not a string")
    return check_text(key, f"{path}: map key")


def _plain(value: Any, path: str, depth: int = 1) -> PlainValue:
    if not isinstance(value, dict) or len(value) != 1:
        raise MalformedRecordError(f"{path}: expected one type descriptor, got {_describe(value)}")
    ((kind, inner),) = value.items()
    if kind == "S":
        # ASCII text is valid Unicode: only other text needs the encoding check.
        return inner if type(inner) is str and inner.isascii() else _string(inner, path)
    if kind == "N":
        if type(inner) is str and inner.isdigit() and inner.isascii() and (
            (inner[0] != "0" and len(inner) <= 38) or inner == "0"
        ):
            return int(inner)  # the common case: a non-negative integer, checked as _INTEGER
        return _number(inner, path)
    if kind not in _DESCRIPTORS:
        raise MalformedRecordError(f"{path}: unknown type descriptor {kind!r}")
    if kind == "BOOL":
        if not isinstance(inner, bool):
            raise MalformedRecordError(f"{path}: BOOL value is not true/false")
        return inner
    if kind == "NULL":
        if inner is not True:
            raise MalformedRecordError(f"{path}: NULL value must be true")
        return None
    if kind == "B":
        return _binary(inner, path)
    if kind in ("M", "L") and depth >= MAX_DEPTH:
        # DynamoDB's own limit: checked before recursing, so no RecursionError.
        raise MalformedRecordError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if kind == "M":
        if not isinstance(inner, dict):
            raise MalformedRecordError(f"{path}: M value is not a map")
        return {_name(k, path): _plain(v, f"{path}.{k}", depth + 1) for k, v in inner.items()}
    if not isinstance(inner, list):
        raise MalformedRecordError(f"{path}: {kind} value is not a list")
    if kind == "L":
        return [_plain(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(inner)]
    if not inner:
        raise MalformedRecordError(f"{path}: {kind} set is empty")
    if kind == "SS":
        return sorted(_string(v, path) for v in inner)
    if kind == "NS":
        return sorted(_number(v, path) for v in inner)
    return sorted(_binary(v, path) for v in inner)


def _string(inner: Any, path: str) -> str:
    if not isinstance(inner, str):
        raise MalformedRecordError(f"{path}: S value is not a string")
    try:
        inner.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedRecordError(f"{path}: string is not valid Unicode ({exc.reason})") from exc
    return inner


def _number(inner: Any, path: str) -> int | float:
    if not isinstance(inner, str) or not _NUMBER.fullmatch(inner):
        raise MalformedRecordError(f"{path}: {inner!r} is not a DynamoDB number")
    mantissa, _, exponent = inner.lower().lstrip("-").partition("e")
    digits = mantissa.replace(".", "").lstrip("0") or "0"
    if len(digits.rstrip("0")) > 38:
        raise MalformedRecordError(f"{path}: {inner!r} has more than 38 significant digits")
    if _INTEGER.fullmatch(inner):
        return int(inner)
    scale = len(mantissa.partition(".")[0].lstrip("0")) + int(exponent or 0)
    if digits != "0" and not -129 <= scale <= 126:
        raise MalformedRecordError(f"{path}: {inner!r} is outside DynamoDB's number range")
    number = float(inner)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _binary(inner: Any, path: str) -> str:
    """Binary stays base64 text in JSON; it is checked, not decoded into memory twice."""
    if not isinstance(inner, str):
        raise MalformedRecordError(f"{path}: B value is not base64 text")
    try:
        base64.b64decode(inner, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedRecordError(f"{path}: B value is not valid base64") from exc
    return inner


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return f"keys {sorted(map(str, value))}" if value else "an empty map"
    return type(value).__name__
