"""Which objects go into which bundle, and each bundle's key (pure: no I/O, no clock).

A bundle's key is a function of its members alone: the hour of its earliest event (the
time partition) and a digest of the members' identities (the collision-free suffix).
The same objects always make the same key, so a retry, a takeover of an abandoned
bundle or a redelivery long after the claims expired all converge on one object, which
the distribution bucket accepts only once (``If-None-Match: *``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .s3_events import SourceObject

BUNDLE_SUFFIX = ".tar.gz"
_DIGEST_CHARS = 32
"""128 bits of SHA-256: distinct member sets never share a key in practice."""


@dataclass(frozen=True, slots=True)
class PlannedBundle:
    key: str
    members: tuple[SourceObject, ...]
    """In bundle order: earliest event first."""

    @property
    def input_bytes(self) -> int:
        return sum(member.size for member in self.members)


def bundle_key(prefix: str, members: Iterable[SourceObject]) -> str:
    """``{prefix}YYYY/MM/DD/HH/bundle-{digest}.tar.gz`` for these members."""
    chosen = list(members)
    if not chosen:
        raise ValueError("a bundle needs at least one member")
    earliest = min(member.event_time for member in chosen)
    digest = hashlib.sha256()
    for identity in sorted({member.identity for member in chosen}):
        digest.update(identity.encode())
    return (f"{prefix}{earliest:%Y/%m/%d/%H}/bundle-{digest.hexdigest()[:_DIGEST_CHARS]}"
            f"{BUNDLE_SUFFIX}")


def bundle_order(objects: Iterable[SourceObject]) -> list[SourceObject]:
    """Earliest event first; ties broken by identity, so any delivery order plans alike."""
    return sorted(objects, key=lambda o: (o.event_time, o.sequencer, o.identity))


def make_bundle(prefix: str, members: Iterable[SourceObject]) -> PlannedBundle:
    ordered = tuple(bundle_order(members))
    return PlannedBundle(bundle_key(prefix, ordered), ordered)


def plan_bundles(objects: Sequence[SourceObject], *, prefix: str, max_input_bytes: int,
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
            bundles.append(make_bundle(prefix, current))
            current, size = [], 0
        current.append(obj)
        size += obj.size
    if current:
        bundles.append(make_bundle(prefix, current))
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
