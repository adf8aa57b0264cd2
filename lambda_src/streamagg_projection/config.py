"""The projection pipeline's one validated configuration, shared by Lambda and CDK.

Parsed by :mod:`streamagg_engine.settings` from the function's environment once per
container, and built at ``cdk synth`` by the construct, so a bad setting fails synth with
a message naming it. Pure: the caller passes the mapping.

A *profile* is a bundle of defaults for the settings left empty: ``default`` is ours (sort key
``sk``, unique per source item and tag; metrics ``StreamAggregator/Projection``); ``seed-004``
is the deployment seed 004's document describes (dashboard key ``day_partition`` +
``ingested_at``, metrics ``SentimentAnalyzer``/``StreamProcessor*``), and fixes the sort key.
The document's variables (``DASHBOARD_TABLE_NAME``, ``TTL_DAYS``, ``LOG_LEVEL``) are read when
ours are absent, whatever the profile, since a user may have set them on the function by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from streamagg_engine.settings import CHOICES, EnvSettings

SK = "sk"
"""Our sort key: ``{ingested_at}#{source_id}``, or ``TAG#{tag}#...`` for a tag item."""
INGESTED_AT = "ingested_at"
"""Seed 004's sort key: ``ingested_at`` itself, or ``{ingested_at}#{tag}`` for a tag item."""
SORT_KEYS = (SK, INGESTED_AT)


@dataclass(frozen=True)
class Profile:
    """The defaults a profile gives the settings left empty."""

    sort_key: str
    fixed: bool
    """The document names the key: ``sort_key`` may not say otherwise."""


DEFAULT = "default"
SEED_004 = "seed-004"
PROFILES: Mapping[str, Profile] = {
    DEFAULT: Profile(SK, fixed=False),
    SEED_004: Profile(INGESTED_AT, fixed=True),
}


@dataclass(frozen=True)
class ProjectionConfig(EnvSettings, env_prefix="PROJECTION_"):
    """How analysed source items become dashboard items (see ``docs/projection.md``).

    Each field maps to one environment variable, ``PROJECTION_`` + its name in capitals.
    """

    profile: str = field(default=DEFAULT, metadata={CHOICES: tuple(PROFILES)})
    """Whose defaults the empty settings take, and whose metric names the batch writes
    (``streamagg_projection.metrics.METRICS``): ours, or seed 004's document's."""
    sort_key: str = ""
    """The dashboard table's sort key attribute: ``sk`` or ``ingested_at``. Empty: the
    profile's (``sk``; ``ingested_at`` under ``seed-004``, the only one it takes)."""
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

    DOCUMENT_ENV_NAMES: ClassVar[Mapping[str, str]] = {
        "dashboard_table_name": "DASHBOARD_TABLE_NAME", "ttl_days": "TTL_DAYS",
        "log_level": "LOG_LEVEL"}
    """Seed 004's variable for a setting, read when ours is absent."""

    def __post_init__(self) -> None:
        self._apply_profile()
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

    def _apply_profile(self) -> None:
        """Fill the sort key from the profile; refuse one a fixed profile contradicts."""
        profile = PROFILES.get(self.profile)
        if profile is None:
            self.invalid("profile", f"unknown profile {self.profile!r}; choose from "
                         f"{', '.join(PROFILES)}")
        sort_key = self.sort_key or profile.sort_key
        object.__setattr__(self, "sort_key", sort_key)
        if sort_key not in SORT_KEYS:
            self.invalid("sort_key", f"unknown sort key {sort_key!r}; choose from "
                         f"{', '.join(SORT_KEYS)}")
        if profile.fixed and sort_key != profile.sort_key:
            self.invalid("sort_key", f"{sort_key!r} conflicts with profile {self.profile} "
                         f"(PROJECTION_PROFILE), whose dashboard key is day_partition + "
                         f"{profile.sort_key}; leave it empty")


ENV_NAMES: dict[str, str] = ProjectionConfig.env_names()
