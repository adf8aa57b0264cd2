"""Structured JSON logs on stdout, one object per line (CloudWatch Logs Insights reads them).

Fields passed with ``extra={...}`` become top-level keys, so queries can filter on
``event_id`` or ``reason`` directly. Every entry has timestamp, level, logger, message;
a line written during an invocation also carries the invocation's fields under the names
AWS Lambda Powertools' Logger uses (``function_name``, ``function_request_id``,
``cold_start``), so Logs Insights queries written for Powertools functions work here too.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message", "asctime", "taskName",
}
ENGINE_LOGGER = "streamagg_engine"
_NO_FIELDS: Mapping[str, object] = MappingProxyType({})
_INVOCATION: ContextVar[Mapping[str, object]] = ContextVar("invocation", default=_NO_FIELDS)
"""A context variable, not a global: tools run several invocations at once in one process,
and each line must name its own (the bootstrap's pool hands it on to worker threads)."""


@contextmanager
def invocation(**fields: object) -> Iterator[None]:
    """Every line logged inside the block carries ``fields``."""
    token = _INVOCATION.set(MappingProxyType(fields))
    try:
        yield
    finally:
        _INVOCATION.reset(token)


def invocation_fields() -> Mapping[str, object]:
    """The fields of the invocation running in this context (none outside one)."""
    return _INVOCATION.get()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_INVOCATION.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        text = json.dumps(entry, default=str, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate from a record would make the line unwritable (and lost):
            # JSON's \u escapes carry it, as valid UTF-8.
            return json.dumps(entry, default=str)
        return text


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is when a line is logged, not when it was built.

    Lambda never swaps stdout; tools that run the handler in-process (the demo, the
    fault-injection harness) redirect it, and must not leave the logger on a closed file.
    """

    @property
    def stream(self) -> object:
        return sys.stdout

    @stream.setter
    def stream(self, _: object) -> None:
        """StreamHandler.__init__ assigns a stream; the property ignores it."""


def configure_logging(level: str, pipeline: str) -> logging.Logger:
    """Give the pipeline package's logger and the engine's one JSON handler each on
    stdout; safe to call again. Returns the pipeline's logger."""
    for name in (ENGINE_LOGGER, pipeline):
        logger = logging.getLogger(name)
        logger.setLevel(level.upper())
        logger.propagate = False
        if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
            handler = StdoutHandler()
            handler.setFormatter(JsonFormatter())
            logger.addHandler(handler)
    return logger
