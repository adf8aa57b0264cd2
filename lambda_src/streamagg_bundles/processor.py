"""Which objects go into which bundle, and each bundle's key (pure: no I/O, no clock).

A bundle's key is a function of its members and of the :class:`KeyScheme` the invocation
was given: a time partition and a digest of the members' identities (the collision-free
suffix). Under ``event-time`` partitioning the time is the hour of the earliest event, so
the same objects always make the same key; under ``write-time`` it is the hour of the
invocation that plans the bundle, passed in as ``written_at``. Either way the key is fixed
once its claim commits, and a retry, a takeover of an abandoned bundle or a redelivery
converge on the key in the record (``bundler.py``), which the distribution bucket accepts
only once (``If-None-Match: *``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from .config import GZIP, WRITE_TIME, BundlerConfig
from .s3_events import SourceObject

SUFFIXES = {GZIP: ".gz"}
"""Key suffix by bundle format; any other format is a tarball."""
TAR_SUFFIX = ".tar.gz"
_DIGEST_CHARS = 32
"""128 bits of SHA-256: distinct member sets never share a key in practice."""


@dataclass(frozen=True, slots=True)
class KeyScheme:
    """How one invocation names bundles: ``{prefix}YYYY/MM/DD/HH/bundle-{digest}{suffix}``."""

    prefix: str = ""
    suffix: str = TAR_SUFFIX
    written_at: datetime | None = None
    """The partition's time for every bundle; None: each bundle's earliest event."""

    def key(self, members: Iterable[SourceObject]) -> str:
        chosen = list(members)
        if not chosen:
            raise ValueError("a bundle needs at least one member")
        moment = self.written_at or min(member.event_time for member in chosen)
        digest = hashlib.sha256()
        for identity in sorted({member.identity for member in chosen}):
            digest.update(identity.encode())
        return (f"{self.prefix}{moment:%Y/%m/%d/%H}/bundle-"
                f"{digest.hexdigest()[:_DIGEST_CHARS]}{self.suffix}")


def key_scheme(config: BundlerConfig, now_ms: int) -> KeyScheme:
    """The scheme of an invocation whose clock reads ``now_ms``."""
    written_at = (datetime.fromtimestamp(now_ms / 1000, UTC)
                  if config.partition_by == WRITE_TIME else None)
    return KeyScheme(config.bundle_prefix, SUFFIXES.get(config.bundle_format, TAR_SUFFIX),
                     written_at)


@dataclass(frozen=True, slots=True)
class PlannedBundle:
    key: str
    members: tuple[SourceObject, ...]
    """In bundle order: earliest event first."""

    @property
    def input_bytes(self) -> int:
        return sum(member.size for member in self.members)


def bundle_order(objects: Iterable[SourceObject]) -> list[SourceObject]:
    """Earliest event first; ties broken by identity, so any delivery order plans alike."""
    return sorted(objects, key=lambda o: (o.event_time, o.sequencer, o.identity))


def make_bundle(keys: KeyScheme, members: Iterable[SourceObject]) -> PlannedBundle:
    ordered = tuple(bundle_order(members))
    return PlannedBundle(keys.key(ordered), ordered)


def plan_bundles(objects: Sequence[SourceObject], *, keys: KeyScheme, max_input_bytes: int,
                 max_objects: int) -> list[PlannedBundle]:
    """Pack objects, in bundle order, into bundles of at most the caps.

    Objects larger than ``max_input_bytes`` must have been set aside by the caller; an
    object that does not fit the current bundle starts the next one.
    """
    bundles: list[PlannedBundle] = []
    current: list[SourceObject] = []
    size = 0
    for obj in bundle_order(objects):
        if obj.size > max_input_bytes:
            raise ValueError(f"{obj.key} is larger than the bundle cap")
        if current and (size + obj.size > max_input_bytes or len(current) == max_objects):
            bundles.append(make_bundle(keys, current))
            current, size = [], 0
        current.append(obj)
        size += obj.size
    if current:
        bundles.append(make_bundle(keys, current))
    return bundles


@dataclass(frozen=True)
class BundleRecord:
    """A claimed bundle as the idempotency table holds it."""

    key: str
    status: str
    owner: str
    lease_until_ms: int
    members: tuple[SourceObject, ...]

    @property
    def done(self) -> bool:
        return self.status == "done"
