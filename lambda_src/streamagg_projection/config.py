"""The projection pipeline's one validated configuration, shared by Lambda and CDK.

Like :class:`aggregator.config.AggregatorConfig`: built from the function's environment
once per container, and at ``cdk synth`` by the construct, so a bad setting fails synth
with a message naming it. Pure: the caller passes the mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import NoReturn

from streamagg_engine.errors import ConfigError

_INT_FIELDS = frozenset({"ttl_days", "score_decimals", "write_attempts", "max_workers"})
_FLOAT_FIELDS = frozenset({"backoff_base_seconds", "backoff_max_seconds"})


@dataclass(frozen=True)
class ProjectionConfig:
    """How analysed source items become dashboard items (see ``docs/projection.md``).

    Each field maps to one environment variable, ``PROJECTION_`` + its name in capitals.
    """

    dashboard_table_name: str = "sentiment-items-dashboard"
    """Where the projected items go."""
    source_partition_key: str = "source_id"
    """The source table's partition key (a string): names the item in logs and lanes."""
    analyzed_status: str = "analyzed"
    """Only items whose ``status`` is this are projected; any other status projects nothing."""
    ttl_days: int = 7
    """``expires_at`` is ``ingested_at`` plus this many days (0: no ``expires_at``)."""
    score_decimals: int = 2
    """Decimals of the score in ``sentiment_score_combined`` (the seed's ``{score:.2f}``)."""
    write_attempts: int = 5
    """BatchWriteItem calls per chunk while DynamoDB keeps returning UnprocessedItems."""
    backoff_base_seconds: float = 0.05
    """First pause before re-sending UnprocessedItems; doubled per attempt, with jitter."""
    backoff_max_seconds: float = 2.0
    """Longest pause between two attempts."""
    max_workers: int = 8
    """BatchWriteItem requests in flight at once per invocation."""
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        for name in ("dashboard_table_name",):
            value = getattr(self, name)
            if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", value):
                _fail(name, f"{value!r} is not a valid DynamoDB table name")
        if not re.fullmatch(r"[^\s]{1,255}", self.source_partition_key):
            _fail("source_partition_key", f"{self.source_partition_key!r} is not an "
                  "attribute name")
        if not self.analyzed_status.strip():
            _fail("analyzed_status", "must not be empty")
        _require_range("ttl_days", self.ttl_days, 0, 3650)
        _require_range("score_decimals", self.score_decimals, 0, 10)
        _require_range("write_attempts", self.write_attempts, 1, 20)
        _require_range("max_workers", self.max_workers, 1, 64)
        if not 0 < self.backoff_base_seconds <= self.backoff_max_seconds <= 30:
            _fail("backoff_base_seconds", "needs 0 < backoff_base_seconds <= "
                  f"backoff_max_seconds <= 30, got {self.backoff_base_seconds!r} and "
                  f"{self.backoff_max_seconds!r}")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            _fail("log_level", f"{self.log_level!r} is not DEBUG, INFO, WARNING or ERROR")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProjectionConfig:
        """Build from environment variables; unset ones take the defaults."""
        kwargs: dict[str, object] = {}
        for f in fields(cls):
            var = ENV_NAMES[f.name]
            if var in env:
                kwargs[f.name] = _parse(f.name, env[var])
        return cls(**kwargs)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that makes :meth:`from_env` rebuild exactly this object."""
        return {ENV_NAMES[f.name]: str(getattr(self, f.name)) for f in fields(self)}


ENV_NAMES: dict[str, str] = {f.name: f"PROJECTION_{f.name.upper()}"
                             for f in fields(ProjectionConfig)}


def _parse(name: str, raw: str) -> object:
    text = raw.strip()
    try:
        if name in _INT_FIELDS:
            return int(text)
        if name in _FLOAT_FIELDS:
            return float(text)
    except ValueError:
        _fail(name, f"{raw!r} is not a number")
    return raw


def _fail(name: str, problem: str) -> NoReturn:
    raise ConfigError(f"{name} ({ENV_NAMES[name]}): {problem}")


def _require_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(name, f"{value!r} must be a whole number from {low} to {high}")
