"""The handler's JSON log lines stay writable whatever a record carried."""

from __future__ import annotations

import json
import logging

from streamagg_engine.logs import JsonFormatter


def line(message: str, **extra: object) -> str:
    record = logging.LogRecord("aggregator", logging.WARNING, __file__, 1, message, None, None)
    for name, value in extra.items():
        setattr(record, name, value)
    return JsonFormatter().format(record)


def test_a_lone_surrogate_from_a_record_is_escaped_not_lost() -> None:
    text = line("skipped malformed record", reason="entity \ud83d")
    text.encode("utf-8")  # writable
    assert json.loads(text)["reason"] == "entity \ud83d"


def test_other_text_stays_as_it_is() -> None:
    text = line("skipped malformed record", reason="entité ✓")
    assert "entité ✓" in text
