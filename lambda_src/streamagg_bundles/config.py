"""The bundler's one validated configuration, shared by the Lambda and by the CDK app.

Every setting is one environment variable (the field name in upper case, parsed by
:mod:`streamagg_engine.settings`) and is checked in ``__post_init__``, so ``cdk synth``
fails on a bad value with a message that names the variable. Pure: the caller passes the
mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamagg_engine.settings import EnvSettings

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
MAX_TRANSACTION_ITEMS = 100
"""DynamoDB's TransactWriteItems limit: one bundle record plus one claim per object."""


@dataclass(frozen=True)
class BundlerConfig(EnvSettings):
    """How S3 objects become bundles. Defaults follow the seed (``MAX_BUNDLE_INPUT_MB`` 100)."""

    distribution_bucket_name: str
    """Where bundles are written (replicated to the archive bucket by S3)."""
    idempotency_table_name: str
    """Claims (one per source object) and bundle records live here."""
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

    @property
    def max_input_bytes(self) -> int:
        return self.max_bundle_input_mb * 1024 * 1024

    @property
    def spool_bytes(self) -> int:
        return self.spool_memory_mb * 1024 * 1024


ENV_NAMES: dict[str, str] = BundlerConfig.env_names()
