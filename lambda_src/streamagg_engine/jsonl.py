"""Gzip JSON Lines, the archive format every pipeline writes (pure: no I/O)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping
from typing import Any

CONTENT_TYPE = "application/x-ndjson"
CONTENT_ENCODING = "gzip"

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""``json.dumps`` with these options would build a new encoder for every line."""


def encode_jsonl(lines: Iterable[Mapping[str, Any]]) -> bytes:
    """Compact JSON Lines, gzip-compressed with a zero mtime so equal input gives equal bytes."""
    encode = _ENCODER.encode
    text = "".join([encode(line) + "\n" for line in lines])
    return gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)
