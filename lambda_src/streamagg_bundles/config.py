"""The bundler's one validated configuration, shared by the Lambda and by the CDK app.

Like :mod:`aggregator.config`, every setting is one environment variable (the field name
in upper case) and is checked in ``__post_init__``, so ``cdk synth`` fails on a bad value
with a message that names the variable. Pure: the caller passes the mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import NoReturn

from streamagg_engine.errors import ConfigError

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_INT_FIELDS = frozenset({
    "max_bundle_input_mb", "max_bundle_objects", "idempotency_ttl_days",
    "claim_lease_seconds", "spool_memory_mb", "max_workers",
})
MAX_TRANSACTION_ITEMS = 100
"""DynamoDB's TransactWriteItems limit: one bundle record plus one claim per object."""


@dataclass(frozen=True)
class BundlerConfig:
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
            _fail("distribution_bucket_name",
                  f"{self.distribution_bucket_name!r} is not a valid S3 bucket name")
        if not _TABLE_NAME.fullmatch(self.idempotency_table_name or ""):
            _fail("idempotency_table_name",
                  f"{self.idempotency_table_name!r} is not a valid DynamoDB table name")
        prefix = self.bundle_prefix
        if prefix and (not prefix.endswith("/") or prefix.startswith("/") or "//" in prefix):
            _fail("bundle_prefix", f"{prefix!r} must be empty or a clean S3 key prefix "
                  "ending with '/', e.g. 'bundles/'")
        # A single PUT takes at most 5 GiB; gzip never grows the input by more than a
        # fraction of a percent, so 4096 MiB of input always fits.
        _require_range("max_bundle_input_mb", self.max_bundle_input_mb, 1, 4096)
        _require_range("max_bundle_objects", self.max_bundle_objects, 1,
                       MAX_TRANSACTION_ITEMS - 1)
        _require_range("idempotency_ttl_days", self.idempotency_ttl_days, 1, 3650)
        _require_range("claim_lease_seconds", self.claim_lease_seconds, 60, 7200)
        _require_range("spool_memory_mb", self.spool_memory_mb, 1, 1024)
        _require_range("max_workers", self.max_workers, 1, 32)
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            _fail("log_level", f"{self.log_level!r} is not DEBUG, INFO, WARNING or ERROR")

    @property
    def max_input_bytes(self) -> int:
        return self.max_bundle_input_mb * 1024 * 1024

    @property
    def spool_bytes(self) -> int:
        return self.spool_memory_mb * 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BundlerConfig:
        """Build from environment variables; unset optional ones take the defaults."""
        kwargs: dict[str, object] = {}
        for f in fields(cls):
            var = ENV_NAMES[f.name]
            if var not in env:
                continue
            text = env[var].strip()
            if f.name in _INT_FIELDS:
                try:
                    kwargs[f.name] = int(text)
                except ValueError:
                    _fail(f.name, f"{env[var]!r} is not a whole number")
            else:
                kwargs[f.name] = text
        for name in ("distribution_bucket_name", "idempotency_table_name"):
            if name not in kwargs:
                _fail(name, "is required")
        return cls(**kwargs)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that makes :meth:`from_env` rebuild exactly this object."""
        return {ENV_NAMES[f.name]: str(getattr(self, f.name)) for f in fields(self)}


ENV_NAMES: dict[str, str] = {f.name: f.name.upper() for f in fields(BundlerConfig)}


def _fail(name: str, problem: str) -> NoReturn:
    raise ConfigError(f"{name} ({ENV_NAMES.get(name, name.upper())}): {problem}")


def _require_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(name, f"{value!r} must be a whole number from {low} to {high}")
