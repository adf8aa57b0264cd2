"""DynamoDB's own limits, checked when a write is planned, so a write DynamoDB must refuse
is never sent.

A record that parses fine can still plan a write DynamoDB refuses with a
``ValidationException`` on every attempt: a long resource id makes a sort key over
1,024 bytes, a key without a namespace makes an index key empty, a large source item
projected makes an item over 400 KB. Sent, such a write fails its batch every time and
blocks the shard until the retries run out; checked here, the record is skipped with a
reason that names the attribute, and its batch goes on.

The numbers (DynamoDB developer guide, *Constraints*): a partition key value is 1 to
2,048 bytes, a sort key value 1 to 1,024 bytes; an item is at most 400 KB, attribute
names and values included; maps and lists nest at most 32 levels; strings are UTF-8.
Index key values are held to 1,024 bytes whichever part of the index key they are:
the tighter of the two bounds, and far above any index key a real source produces.
An index key attribute that is present must not be empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .bounds import MAX_DEPTH
from .errors import MalformedRecordError

PARTITION_KEY_BYTES = 2048
SORT_KEY_BYTES = 1024
INDEX_KEY_BYTES = 1024
ITEM_BYTES = 400 * 1024


def check_key(value: str, name: str, *, sort: bool = False, index: bool = False) -> str:
    """``value`` if DynamoDB takes it as key attribute ``name``; else the reason why not."""
    limit = INDEX_KEY_BYTES if index else SORT_KEY_BYTES if sort else PARTITION_KEY_BYTES
    if not value:
        raise MalformedRecordError(f"{name}: empty {'index ' if index else ''}key value")
    # A character is at most 4 UTF-8 bytes: short ASCII keys skip the encoding.
    if len(value) * 4 <= limit and value.isascii():
        return value
    size = _utf8_size(value, name)
    if size > limit:
        raise MalformedRecordError(f"{name}: {size} bytes, over DynamoDB's {limit}-byte "
                                   f"{'index ' if index else ''}"
                                   f"{'sort' if sort else 'partition'} key limit")
    return value


def check_item(item: Mapping[str, Any], what: str = "item") -> int:
    """The item's size in bytes as DynamoDB counts it, if within 400 KB and 32 levels.

    ``item`` is in DynamoDB JSON. The size is DynamoDB's documented estimate: names
    and strings in UTF-8 bytes, binary in raw bytes, a number one byte per two
    significant digits plus one, 1 byte for a boolean or null, and 3 bytes plus 1 per
    element for a map or list.
    """
    size = 0
    stack: list[tuple[Any, int]] = [(item, 0)]
    first = True
    while stack:
        current, depth = stack.pop()
        if first:
            first = False
            entries = current.items()
        else:
            ((kind, inner),) = current.items()
            if kind == "S":
                size += _utf8_size(inner, what)
                continue
            if kind == "N":
                size += _number_size(inner)
                continue
            if kind == "B":
                size += len(inner) * 3 // 4
                continue
            if kind in ("BOOL", "NULL"):
                size += 1
                continue
            if kind in ("SS", "NS", "BS"):
                size += sum(_number_size(v) if kind == "NS" else _utf8_size(v, what)
                            for v in inner)
                continue
            if depth > MAX_DEPTH:
                raise MalformedRecordError(f"{what}: nested deeper than {MAX_DEPTH} levels")
            size += 3 + len(inner)
            if kind == "L":
                stack.extend((element, depth + 1) for element in inner)
                continue
            entries = inner.items()
        for name, value in entries:
            size += _utf8_size(name, what)
            stack.append((value, depth + 1))
        if size > ITEM_BYTES:
            break
    if size > ITEM_BYTES:
        raise MalformedRecordError(f"{what}: over DynamoDB's 400 KB item size limit")
    return size


def _utf8_size(value: str, name: str) -> int:
    if value.isascii():
        return len(value)
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise MalformedRecordError(f"{name}: string is not valid Unicode") from None


def _number_size(text: str) -> int:
    digits = text.lstrip("-").lower().partition("e")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1
