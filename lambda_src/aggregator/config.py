"""One validated configuration, shared by the Lambda and by the CDK app.

The Lambda reads it from its environment once per container; ``infra/`` builds the
same object at ``cdk synth`` and writes it into the function's environment with
:meth:`AggregatorConfig.to_env`. Because both sides go through ``__post_init__``, a bad
setting fails at synth with a message that names it, never at 3 a.m. in Lambda.

Parsing and the shared checks are :mod:`streamagg_engine.settings`; the checks only this
pipeline needs live here. Pure (no boto3, no ``os.environ``): the caller passes the mapping.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from streamagg_engine.settings import EnvSettings
from streamagg_engine.windows import Window

# Fields each key template may use, by template.
_SNAPSHOT_KEY_FIELDS = frozenset({"ns", "entity", "resource", "window_key", "window"})

DEFAULT_SNAPSHOT_PK = "{ns}/ENTITY#{entity}"
DEFAULT_SNAPSHOT_SK = "#USAGE#{resource}#{window_key}#{window}"
DEFAULT_SNAPSHOT_GSI2PK = "{ns}/RESOURCE#{resource}"
DEFAULT_SNAPSHOT_GSI2SK = "USAGE#{window_key}#{entity}"
DEFAULT_SNAPSHOT_GSI4PK = "{ns}"
DEFAULT_SNAPSHOT_GSI4SK = "{ns}/ENTITY#{entity}"


@dataclass(frozen=True)
class AggregatorConfig(EnvSettings):
    """How stream records become snapshots, refills and archive objects.

    The defaults are the zae-limiter profile, so the aggregator works on a zae-limiter
    table as it is. Each field maps to one environment variable (see ``ENV_NAMES``).
    """

    table_name: str = "rate-limits"
    """Source table: its stream feeds the aggregator and refills are written back to it."""
    snapshot_table_name: str = ""
    """Where snapshot items go; empty means the source table."""
    snapshot_windows: tuple[Window, ...] = (Window.HOURLY, Window.DAILY)
    """Which windows get a snapshot item; any of hourly, daily, monthly."""
    snapshot_ttl_days: int = 90
    """Snapshots expire this many days after their window ends; 0 keeps them forever."""
    enable_archival: bool = True
    """Archive matching REMOVE records to S3 (needs ``archive_bucket_name``)."""
    archive_bucket_name: str = ""
    """Bucket for the archive; empty disables archival whatever ``enable_archival`` says."""
    archive_prefix: str = "audit/"
    """Key prefix in front of the Hive partitions (``year=YYYY/month=MM/day=DD``)."""
    archive_key_marker: str = "AUDIT#"
    """A REMOVE record is archived when its PK, after the namespace, starts with this."""
    source_key_marker: str = "BUCKET#"
    """A record feeds snapshots when its PK, after the namespace, starts with this."""
    entity_attribute: str = "entity_id"
    """Attribute of a source item naming the entity a snapshot belongs to."""
    resource_attribute: str = "resource"
    """Attribute of a source item naming the resource a snapshot belongs to."""
    counter_attribute: str = "b_{limit}_tc"
    """Pattern of the cumulative counters; ``{limit}`` matches the counter's name."""
    counter_scale: int = 1000
    """Stored counters are divided by this before they reach a snapshot (millitokens)."""
    excluded_counters: tuple[str, ...] = ("wcu",)
    """Counter names never snapshotted (zae-limiter's internal write-capacity limit)."""
    enable_refill: bool = True
    """Bucket maintenance by zae-limiter 0.17's own code: refill (schedules, quotas, duration
    windows, ``vu``, top-ups included), the sharding backstop and shard-count propagation."""
    snapshot_pk: str = DEFAULT_SNAPSHOT_PK
    snapshot_sk: str = DEFAULT_SNAPSHOT_SK
    snapshot_gsi2pk: str = DEFAULT_SNAPSHOT_GSI2PK
    snapshot_gsi2sk: str = DEFAULT_SNAPSHOT_GSI2SK
    snapshot_gsi4pk: str = DEFAULT_SNAPSHOT_GSI4PK
    """zae-limiter's namespace index (purge); empty leaves GSI4 keys off the item."""
    snapshot_gsi4sk: str = DEFAULT_SNAPSHOT_GSI4SK
    max_workers: int = 64
    """Concurrent DynamoDB/S3 requests per invocation (threads; each waits on I/O).

    64: a 1,000-record batch needs ~800 requests, and with fewer lanes their latency,
    not the CPU, sets the batch's duration (``make bench``: 16 lanes, 600 ms at 10 ms per
    call; 64 lanes, CPU-bound at ~200 ms)."""
    log_level: str = "INFO"

    _counter_regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.require_table_name("table_name")
        if self.snapshot_table_name:
            self.require_table_name("snapshot_table_name")
        if not self.snapshot_windows:
            self.invalid("snapshot_windows",
                         "at least one window is needed (hourly, daily, monthly)")
        if len(set(self.snapshot_windows)) != len(self.snapshot_windows):
            self.invalid("snapshot_windows", "a window is listed twice")
        self.require_range("snapshot_ttl_days", 0, 36_500)
        self.require_range("counter_scale", 1, 10**12)
        self.require_range("max_workers", 1, 64)
        for name in ("archive_key_marker", "source_key_marker", "entity_attribute",
                     "resource_attribute"):
            if not getattr(self, name):
                self.invalid(name, "must not be empty")
        if self.archive_key_marker.startswith(self.source_key_marker) or \
                self.source_key_marker.startswith(self.archive_key_marker):
            self.invalid("archive_key_marker", "must not overlap source_key_marker")
        self.require_key_prefix("archive_prefix")
        if self.counter_attribute.count("{limit}") != 1:
            self.invalid("counter_attribute",
                         "must contain '{limit}' exactly once, e.g. 'b_{limit}_tc'")
        for name in ("snapshot_pk", "snapshot_sk", "snapshot_gsi2pk", "snapshot_gsi2sk"):
            self._require_template(name)
        for name in ("snapshot_gsi4pk", "snapshot_gsi4sk"):
            self._require_template(name, optional=True)
        if bool(self.snapshot_gsi4pk) != bool(self.snapshot_gsi4sk):
            self.invalid("snapshot_gsi4sk", "set both GSI4 templates or neither")
        if len(self.snapshot_windows) > 1 and "{window}" not in self.snapshot_pk + self.snapshot_sk:
            self.invalid("snapshot_sk", "with several snapshot_windows the key must contain "
                         "{window}: an hourly, daily and monthly window can start at the same "
                         "second")
        self.require_log_level()
        head, _, tail = self.counter_attribute.partition("{limit}")
        regex = re.compile(f"^{re.escape(head)}(?P<limit>[A-Za-z0-9_.-]+?){re.escape(tail)}$")
        object.__setattr__(self, "_counter_regex", regex)

    def _require_template(self, name: str, *, optional: bool = False) -> None:
        template: str = getattr(self, name)
        if not template:
            if optional:
                return
            self.invalid(name, "must not be empty")
        try:
            used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        except ValueError as exc:
            self.invalid(name, f"{template!r} is not a valid template: {exc}")
        unknown = used - _SNAPSHOT_KEY_FIELDS
        if unknown:
            self.invalid(name, f"unknown field(s) {sorted(unknown)}; "
                         f"use {sorted(_SNAPSHOT_KEY_FIELDS)}")

    @property
    def archival_enabled(self) -> bool:
        """Archival needs both the switch and a bucket: either alone turns it off."""
        return self.enable_archival and bool(self.archive_bucket_name)

    @property
    def snapshot_table(self) -> str:
        return self.snapshot_table_name or self.table_name

    def counter_name(self, attribute: str) -> str | None:
        """The limit name an attribute counts for, or None if it is not a counter."""
        match = self._counter_regex.match(attribute)
        if match is None:
            return None
        name = match.group("limit")
        return None if name in self.excluded_counters else name


ENV_NAMES: dict[str, str] = AggregatorConfig.env_names()
