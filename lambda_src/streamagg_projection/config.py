"""The projection pipeline's one validated configuration, shared by Lambda and CDK.

Parsed by :mod:`streamagg_engine.settings` from the function's environment once per
container, and built at ``cdk synth`` by the construct, so a bad setting fails synth with
a message naming it. Pure: the caller passes the mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamagg_engine.settings import EnvSettings


@dataclass(frozen=True)
class ProjectionConfig(EnvSettings, env_prefix="PROJECTION_"):
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
        self.require_table_name("dashboard_table_name")
        if not re.fullmatch(r"[^\s]{1,255}", self.source_partition_key):
            self.invalid("source_partition_key",
                         f"{self.source_partition_key!r} is not an attribute name")
        if not self.analyzed_status.strip():
            self.invalid("analyzed_status", "must not be empty")
        self.require_range("ttl_days", 0, 3650)
        self.require_range("score_decimals", 0, 10)
        self.require_range("write_attempts", 1, 20)
        self.require_range("max_workers", 1, 64)
        if not 0 < self.backoff_base_seconds <= self.backoff_max_seconds <= 30:
            self.invalid("backoff_base_seconds", "needs 0 < backoff_base_seconds <= "
                         f"backoff_max_seconds <= 30, got {self.backoff_base_seconds!r} and "
                         f"{self.backoff_max_seconds!r}")
        self.require_log_level()


ENV_NAMES: dict[str, str] = ProjectionConfig.env_names()
