"""The bundler's one validated configuration, shared by the Lambda and by the CDK app.

Every setting is one environment variable (the field name in upper case, parsed by
:mod:`streamagg_engine.settings`) and is checked in ``__post_init__``, so ``cdk synth``
fails on a bad value with a message that names the variable. Pure: the caller passes the
mapping.

A *profile* is a bundle of defaults for the settings left empty: ``default`` is ours (a gzip
tar with a manifest, partitioned by the earliest event's hour); ``seed-001`` is the format
seed 001's document describes (one plain gzip of the objects' bytes, partitioned by the hour
the bundle is first claimed), and fixes both. The document's variable names are ours
already (``DISTRIBUTION_BUCKET_NAME``, ``MAX_BUNDLE_INPUT_MB``, ``IDEMPOTENCY_TABLE_NAME``,
``IDEMPOTENCY_TTL_DAYS``, ``SERVICE_NAME``, ``LOG_LEVEL``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from streamagg_engine.settings import CHOICES, EnvSettings

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
MAX_TRANSACTION_ITEMS = 100
"""DynamoDB's TransactWriteItems limit: one bundle record plus one claim per object."""
_SERVICE_NAME = re.compile(r"[A-Za-z0-9._-]{0,128}")

TAR = "tar"
"""A gzip-compressed tar of the objects plus ``manifest.json`` (``tarball.py``)."""
GZIP = "gzip"
"""One gzip stream of the objects' bytes, concatenated in bundle order (``concat.py``)."""
EVENT_TIME = "event-time"
"""The key's ``YYYY/MM/DD/HH`` is the hour of the members' earliest event."""
WRITE_TIME = "write-time"
"""The key's ``YYYY/MM/DD/HH`` is the hour of the invocation that first claims the bundle."""
BUNDLE_FORMATS = (TAR, GZIP)
PARTITIONS = (EVENT_TIME, WRITE_TIME)


@dataclass(frozen=True)
class Profile:
    """The defaults a profile gives the settings left empty."""

    bundle_format: str
    partition_by: str
    fixed: bool
    """The document fixes the format and the partition: an explicit other value is refused."""


DEFAULT = "default"
SEED_001 = "seed-001"
PROFILES: Mapping[str, Profile] = {
    DEFAULT: Profile(TAR, EVENT_TIME, fixed=False),
    SEED_001: Profile(GZIP, WRITE_TIME, fixed=True),
}


@dataclass(frozen=True)
class BundlerConfig(EnvSettings):
    """How S3 objects become bundles. Defaults follow the seed (``MAX_BUNDLE_INPUT_MB`` 100)."""

    distribution_bucket_name: str
    """Where bundles are written (replicated to the archive bucket by S3)."""
    idempotency_table_name: str
    """Claims (one per source object) and bundle records live here."""
    profile: str = field(default=DEFAULT, metadata={CHOICES: tuple(PROFILES)})
    """Whose defaults the empty settings below take: ours, or seed 001's document's."""
    bundle_format: str = ""
    """``tar`` or ``gzip`` (see :data:`TAR`, :data:`GZIP`). Empty: the profile's."""
    partition_by: str = ""
    """``event-time`` or ``write-time`` (see :data:`EVENT_TIME`). Empty: the profile's."""
    service_name: str = ""
    """Seed 001's ``SERVICE_NAME``: when set, every bundle carries it as S3 metadata
    ``service``, so a consumer of the manifest-less format knows who wrote it."""
    bundle_prefix: str = ""
    """Key prefix in front of ``YYYY/MM/DD/HH/``; empty or ending with ``/``."""
    max_bundle_input_mb: int = 100
    """Cap on the summed size of a bundle's source objects, in MiB; a larger object is
    not bundled (its message fails and ends in the DLQ, see docs/bundles.md)."""
    max_bundle_objects: int = MAX_TRANSACTION_ITEMS - 1
    """Objects per bundle: all are claimed in one transaction with the bundle record."""
    idempotency_ttl_days: int = 30
    """Claims expire this many days after they were made (DynamoDB TTL)."""
    claim_lease_seconds: int = 960
    """How long a claimed, unwritten bundle belongs to its invocation (timeout + margin)."""
    spool_memory_mb: int = 8
    """A bundle is compressed into memory up to this size, then spills to /tmp."""
    max_workers: int = 4
    """Bundles built concurrently per invocation."""
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        self._apply_profile()
        if not _SERVICE_NAME.fullmatch(self.service_name):
            self.invalid("service_name", f"{self.service_name!r} must be at most 128 of "
                         "A-Za-z0-9._- (it becomes S3 object metadata)")
        if not _BUCKET_NAME.fullmatch(self.distribution_bucket_name or ""):
            self.invalid("distribution_bucket_name",
                         f"{self.distribution_bucket_name!r} is not a valid S3 bucket name")
        self.require_table_name("idempotency_table_name")
        prefix = self.bundle_prefix
        if prefix and (not prefix.endswith("/") or prefix.startswith("/") or "//" in prefix):
            self.invalid("bundle_prefix", f"{prefix!r} must be empty or a clean S3 key prefix "
                         "ending with '/', e.g. 'bundles/'")
        # A single PUT takes at most 5 GiB; gzip never grows the input by more than a
        # fraction of a percent, so 4096 MiB of input always fits.
        self.require_range("max_bundle_input_mb", 1, 4096)
        self.require_range("max_bundle_objects", 1, MAX_TRANSACTION_ITEMS - 1)
        self.require_range("idempotency_ttl_days", 1, 3650)
        self.require_range("claim_lease_seconds", 60, 7200)
        self.require_range("spool_memory_mb", 1, 1024)
        self.require_range("max_workers", 1, 32)
        self.require_log_level()

    def _apply_profile(self) -> None:
        """Fill the empty settings from the profile; refuse what a fixed profile contradicts."""
        profile = PROFILES.get(self.profile)
        if profile is None:
            self.invalid("profile", f"unknown profile {self.profile!r}; choose from "
                         f"{', '.join(PROFILES)}")
        for name, choices in (("bundle_format", BUNDLE_FORMATS), ("partition_by", PARTITIONS)):
            wanted = getattr(profile, name)
            value = getattr(self, name) or wanted
            object.__setattr__(self, name, value)
            if value not in choices:
                self.invalid(name, f"unknown value {value!r}; choose from {', '.join(choices)}")
            if profile.fixed and value != wanted:
                self.invalid(name, f"{value!r} conflicts with profile {self.profile} "
                             f"(PROFILE), whose bundles are {wanted!r}; leave it empty")

    @property
    def max_input_bytes(self) -> int:
        return self.max_bundle_input_mb * 1024 * 1024

    @property
    def spool_bytes(self) -> int:
        return self.spool_memory_mb * 1024 * 1024


ENV_NAMES: dict[str, str] = BundlerConfig.env_names()
