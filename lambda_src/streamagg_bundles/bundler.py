"""One planned bundle, claimed and written exactly once, whatever happened before.

The steps, and why each is safe to repeat:

1. **Claim** the members and write the bundle record in one transaction, each item
   conditioned on not existing. Either all members now belong to this bundle key, or
   the transaction names the bundles that already hold some of them.
2. **Settle** each holder: a finished bundle means its members are done (duplicates);
   an unfinished one still leased by a live invocation means "retry later"; one whose
   lease ran out (its invocation crashed or timed out) is checked with HeadObject and,
   if it is not there, *taken over* with a conditional lease update and written by us,
   from the member list in its record. The remaining members are re-planned (a new key,
   since the key is a digest of the members) and claimed again.
3. **Write**: stream the members into a spooled bundle (a gzip tarball, or seed 001's plain
   gzip: :data:`WRITERS`) and PUT it with
   ``If-None-Match: *``; a 412 means the same bundle already exists (a lost response,
   or a takeover racing the original), which is success, not a second copy.
4. **Complete**: mark the record done, so later duplicates stop at step 2.

A crash between any two steps leaves a state one of the steps above resumes from. The key
(and with it a write-time partition's hour) is the one the claim committed: a retry in a
later hour plans a new key, finds the members claimed by the old one and finishes that.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from .concat import write_concatenated
from .config import GZIP, TAR, BundlerConfig
from .processor import BundleRecord, PlannedBundle, key_scheme, make_bundle
from .s3_events import SourceObject
from .tarball import Manifest, ObjectOpener, OpenedObject, write_bundle

Writer = Callable[[IO[bytes], str, Sequence[SourceObject], ObjectOpener], Manifest]
WRITERS: Mapping[str, Writer] = {TAR: write_bundle, GZIP: write_concatenated}
"""The bundle's bytes, by ``BUNDLE_FORMAT``."""


class Claims(Protocol):
    def claim(self, bundle: PlannedBundle, *, owner: str, now_ms: int,
              lease_until_ms: int) -> dict[str, set[str]]: ...

    def get(self, bundle_key: str) -> BundleRecord | None: ...

    def take_over(self, record: BundleRecord, *, owner: str, lease_until_ms: int) -> bool: ...

    def complete(self, bundle_key: str) -> None: ...


class Sources(Protocol):
    def open(self, obj: SourceObject) -> OpenedObject | None: ...


class Bundles(Protocol):
    def exists(self, key: str) -> bool: ...

    def put(self, key: str, body: IO[bytes], manifest: Manifest) -> bool: ...


@dataclass(frozen=True)
class Stores:
    """What a bundle is written through (``storage.py`` has the AWS adapters)."""

    claims: Claims
    sources: Sources
    bundles: Bundles


@dataclass
class Outcome:
    """What became of one planned bundle's members."""

    written: list[Manifest] = field(default_factory=list)
    """Bundles this job PUT (its own, and any it took over)."""
    already_written: list[str] = field(default_factory=list)
    """Bundle keys whose PUT found the object there (412): written before, not again."""
    done: set[str] = field(default_factory=set)
    """Identities now in a finished bundle: their messages succeeded."""
    deferred: set[str] = field(default_factory=set)
    """Identities a live invocation is bundling: their messages are retried later."""


@dataclass(frozen=True)
class Lease:
    owner: str
    """This invocation (its request id): a record it owns is its own earlier attempt."""
    now_ms: int
    until_ms: int


class Bundler:
    def __init__(self, stores: Stores, config: BundlerConfig, lease: Lease, *,
                 spool: Callable[[], IO[bytes]] | None = None) -> None:
        self._stores = stores
        self._config = config
        self._lease = lease
        self._keys = key_scheme(config, lease.now_ms)
        self._writer = WRITERS[config.bundle_format]
        self._spool = spool or (lambda: tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=config.spool_bytes, mode="w+b"))

    def run(self, planned: PlannedBundle) -> Outcome:
        outcome = Outcome()
        settled: dict[str, bool] = {}
        bundle = planned
        for _ in range(len(planned.members) + 1):
            holders = self._stores.claims.claim(
                bundle, owner=self._lease.owner, now_ms=self._lease.now_ms,
                lease_until_ms=self._lease.until_ms)
            if not holders:
                self._write(bundle.key, bundle.members, outcome)
                outcome.done.update(m.identity for m in bundle.members)
                break
            held: set[str] = set()
            for key, identities in sorted(holders.items()):
                if key not in settled:
                    settled[key] = self._settle(key, outcome)
                (outcome.done if settled[key] else outcome.deferred).update(identities)
                held |= identities
            remaining = [m for m in bundle.members if m.identity not in held]
            if not remaining:
                break
            bundle = make_bundle(self._keys, remaining)
        outcome.done -= outcome.deferred
        return outcome

    def _settle(self, key: str, outcome: Outcome) -> bool:
        """True when bundle ``key`` is finished (now, by us, if it was abandoned)."""
        claims = self._stores.claims
        record = claims.get(key)
        if record is None:
            return False  # claims outlived their record (TTL): retry once they expire too
        if record.done:
            return True
        if record.owner != self._lease.owner:
            if record.lease_until_ms > self._lease.now_ms:
                return False
            if self._stores.bundles.exists(key):
                claims.complete(key)
                return True
            if not claims.take_over(record, owner=self._lease.owner,
                                    lease_until_ms=self._lease.until_ms):
                return False
        self._write(key, record.members, outcome)
        return True

    def _write(self, key: str, members: tuple[SourceObject, ...], outcome: Outcome) -> None:
        with self._spool() as spool:
            manifest = self._writer(spool, key, members, self._stores.sources.open)
            if self._stores.bundles.put(key, spool, manifest):
                outcome.written.append(manifest)
            else:
                outcome.already_written.append(key)
        self._stores.claims.complete(key)
