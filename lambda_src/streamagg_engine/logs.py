"""Structured JSON logs on stdout, one object per line (CloudWatch Logs Insights reads them).

Fields passed with ``extra={...}`` become top-level keys, so queries can filter on
``event_id`` or ``reason`` directly. Every entry has timestamp, level, logger, message.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message", "asctime", "taskName",
}
ENGINE_LOGGER = "streamagg_engine"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


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
