"""The event-metrics pipeline's one validated configuration (Lambda environment and synth).

A frozen dataclass parsed by :mod:`streamagg_engine.settings` (variables ``EVENTS_*``) and
validated in ``__post_init__``, so a bad setting fails ``cdk synth`` with a message naming
it. Pure: the caller passes the environment mapping.

A *profile* is a bundle of defaults: ``default`` is ours; ``seed-003`` is the deployment
seed 003's document describes (metrics table keys ``partition_key``/``sort_key``, table
``event-aggregations``, bucket ``event-archive``). A setting left empty takes its profile's
value; the document's own variables (``DYNAMODB_TABLE``, ``S3_BUCKET``) are read when ours
are absent, whatever the profile, since a user may have set them on the function by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from streamagg_engine.settings import CHOICES, EnvSettings
from streamagg_engine.windows import Window

_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_WINDOWS = (Window.HOURLY, Window.DAILY)
MAX_ARCHIVE_OBJECT_BYTES = 5 * 1024 * 1024
MAX_ARCHIVE_OBJECT_EVENTS = 1000
_ATTRIBUTE = re.compile(r"[A-Za-z0-9_.-]{1,255}")
_ITEM_ATTRIBUTES = frozenset({"experiment_id", "variant", "window", "window_start", "users",
                              "ttl", "sequence_number", "events"})
"""Attributes the pipeline writes on metrics items: a key attribute cannot take their names."""


@dataclass(frozen=True)
class Profile:
    """The defaults a profile gives the settings left empty."""

    key_attributes: tuple[str, str]
    metrics_table_name: str
    archive_bucket_name: str
    document: bool
    """A seed document's deployment: its keys are fixed (``key_attributes`` may not say
    otherwise) and the construct also writes its variable names."""


DEFAULT = "default"
SEED_003 = "seed-003"
PROFILES: Mapping[str, Profile] = {
    DEFAULT: Profile(("pk", "sk"), "event-metrics", "", document=False),
    SEED_003: Profile(("partition_key", "sort_key"), "event-aggregations", "event-archive",
                      document=True),
}


@dataclass(frozen=True)
class EventMetricsConfig(EnvSettings, env_prefix="EVENTS_"):
    """How validated events become counters, unique-user sets and archive objects."""

    profile: str = field(default=DEFAULT, metadata={CHOICES: tuple(PROFILES)})
    """Whose defaults the empty settings below take: ours, or seed 003's document's."""
    metrics_table_name: str = ""
    """Counters, unique-user sets and per-event markers. Empty: the profile's
    (``event-metrics``; ``event-aggregations`` under ``seed-003``)."""
    key_attributes: tuple[str, ...] = ()
    """The metrics table's partition and sort key attribute names (String). Empty: the
    profile's (``pk,sk``; ``partition_key,sort_key`` under ``seed-003``, the only pair it
    takes)."""
    lookup_table_name: str = "experiment-lookups"
    """Experiments and assignments, read by key (``pk``); never written."""
    windows: tuple[Window, ...] = field(default=_WINDOWS, metadata={CHOICES: _WINDOWS})
    """Counter windows: hourly and/or daily."""
    event_types: tuple[str, ...] = ("exposure", "click", "conversion", "purchase")
    """Accepted ``event_type`` values; each gets its own count and sum attributes."""
    metrics_ttl_days: int = 400
    """Counters expire this many days after their window ends; 0 keeps them forever."""
    marker_ttl_days: int = 8
    """Per-event markers expire after this; must outlive every possible redelivery."""
    unique_user_shards: int = 4
    """Unique-user sets per variant window are split over this many items (400 KB each)."""
    enable_archival: bool = True
    archive_bucket_name: str = ""
    """Empty: the profile's (none, which disables archival whatever ``enable_archival``
    says; ``event-archive`` under ``seed-003``)."""
    archive_prefix: str = "events/"
    archive_max_bytes: int = MAX_ARCHIVE_OBJECT_BYTES
    """An archive object holds at most this much uncompressed JSON ..."""
    archive_max_events: int = MAX_ARCHIVE_OBJECT_EVENTS
    """... and at most this many events."""
    transaction_size: int = 100
    """Actions per TransactWriteItems (DynamoDB allows 100)."""
    max_workers: int = 8
    log_level: str = "INFO"

    DOCUMENT_ENV_NAMES: ClassVar[Mapping[str, str]] = {
        "metrics_table_name": "DYNAMODB_TABLE", "archive_bucket_name": "S3_BUCKET"}
    """Seed 003's variable for a setting, read when ours is absent. Its ``DLQ_URL`` is not
    read: the mapping's on-failure destination takes what Lambda gives up."""

    def __post_init__(self) -> None:
        self._apply_profile()
        self.require_table_name("metrics_table_name")
        self.require_table_name("lookup_table_name")
        if not self.windows or any(w not in _WINDOWS for w in self.windows):
            self.invalid("windows", "choose one or both of hourly, daily")
        if len(set(self.windows)) != len(self.windows):
            self.invalid("windows", "a window is listed twice")
        if not self.event_types or len(set(self.event_types)) != len(self.event_types):
            self.invalid("event_types", "list each accepted event type once, at least one")
        for event_type in self.event_types:
            if not _EVENT_TYPE.fullmatch(event_type):
                self.invalid("event_types",
                             f"{event_type!r} is not lower_snake_case of 1-40 chars")
        self.require_range("metrics_ttl_days", 0, 36_500)
        self.require_range("marker_ttl_days", 2, 400)
        self.require_range("unique_user_shards", 1, 256)
        self.require_range("archive_max_bytes", 1024, MAX_ARCHIVE_OBJECT_BYTES)
        self.require_range("archive_max_events", 1, MAX_ARCHIVE_OBJECT_EVENTS)
        self.require_range("transaction_size", 2 + len(self.windows), 100)
        self.require_range("max_workers", 1, 64)
        self.require_key_prefix("archive_prefix")
        self.require_log_level()

    def _apply_profile(self) -> None:
        """Fill the empty settings from the profile; refuse keys the profile fixes otherwise."""
        profile = PROFILES.get(self.profile)
        if profile is None:
            self.invalid("profile", f"unknown profile {self.profile!r}; choose from "
                         f"{', '.join(PROFILES)}")
        for name in ("metrics_table_name", "key_attributes", "archive_bucket_name"):
            if not getattr(self, name):
                object.__setattr__(self, name, getattr(profile, name))
        keys = self.key_attributes
        if profile.document and keys != profile.key_attributes:
            self.invalid("key_attributes", f"{','.join(keys)!r} conflicts with profile "
                         f"{self.profile}, whose table has keys "
                         f"{','.join(profile.key_attributes)}; leave it empty")
        if len(keys) != 2 or keys[0] == keys[1]:
            self.invalid("key_attributes", "name the partition key and the sort key, two "
                         "different attributes")
        counted = {f"{kind}_{t}" for t in self.event_types for kind in "ns"}
        for key in keys:
            if not _ATTRIBUTE.fullmatch(key) or key in _ITEM_ATTRIBUTES | counted:
                self.invalid("key_attributes", f"{key!r} is not a free attribute name "
                             "(1-255 of A-Za-z0-9_.-, not one the pipeline writes)")

    @property
    def follows_document(self) -> bool:
        """The profile is a seed document's deployment (see :class:`Profile`)."""
        return PROFILES[self.profile].document

    @property
    def partition_key(self) -> str:
        return self.key_attributes[0]

    @property
    def sort_key(self) -> str:
        return self.key_attributes[1]

    @property
    def archival_enabled(self) -> bool:
        return self.enable_archival and bool(self.archive_bucket_name)


ENV_NAMES: dict[str, str] = EventMetricsConfig.env_names()
