"""The bundle format: a gzip-compressed POSIX (pax) tar of the source objects.

Members are ``objects/00000``, ``objects/00001``, ... in bundle order, each holding one
source object's bytes unchanged, then ``manifest.json`` (the last member) mapping each
member to its bucket, key, version, ETag, size and event. Objects that vanished before
they could be read (deleted, or overwritten in an unversioned bucket) are listed under
``missing``. ``tar -xzf`` unpacks a bundle anywhere; member names never come from keys,
so a key like ``../x`` cannot escape the extraction directory.

Streaming: each object's body is copied in ``chunk_size`` pieces into the tar writer,
which writes into gzip, which writes into ``out`` (a SpooledTemporaryFile in Lambda).
Memory holds one chunk and the spool's in-memory part, whatever the objects' sizes.
The gzip header carries no timestamp and the tar headers only the objects' own
LastModified, so the bytes depend on the objects alone.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Protocol

from streamagg_engine.errors import StoreError

from .s3_events import SourceObject

FORMAT = "s3-object-bundle/1"
MANIFEST = "manifest.json"
CONTENT_TYPE = "application/gzip"
DEFAULT_CHUNK = 1024 * 1024


class Readable(Protocol):
    def read(self, amount: int = ..., /) -> bytes: ...


@dataclass
class OpenedObject:
    """A source object's body being read, with what the tar header needs."""

    body: Readable
    size: int
    """ContentLength of the response: exactly this many bytes are copied."""
    last_modified: datetime | None
    close: Callable[[], None] = lambda: None


ObjectOpener = Callable[[SourceObject], "OpenedObject | None"]
"""Opens a source object's body; None when the object is gone; raises
:class:`UnreadableObject` when it can never be read."""
GONE = "gone before it was read"


class UnreadableObject(Exception):  # noqa: N818 - a verdict on the object, not a failure
    """A source object that cannot be read on any attempt (its bucket does not exist, access
    is denied, the name is invalid): it is left out of its bundle, listed under
    ``missing`` with the reason, and the bundle of the other members is written."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Manifest:
    key: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)

    @property
    def input_bytes(self) -> int:
        return sum(int(entry["size"]) for entry in self.objects)

    def document(self) -> dict[str, Any]:
        return {"format": FORMAT, "bundle": self.key, "objects": self.objects,
                "missing": self.missing}


class ExactBody:
    """Reads ``size`` bytes of ``body`` in full chunks, however the stream splits them."""

    def __init__(self, body: Readable, size: int) -> None:
        self._body = body
        self._left = size

    def read(self, amount: int = -1) -> bytes:
        wanted = self._left if amount < 0 else min(amount, self._left)
        parts: list[bytes] = []
        while wanted > 0:
            chunk = self._body.read(wanted)
            if not chunk:
                raise StoreError(f"source body ended {self._left} bytes early",
                                 retryable=True, code="TruncatedBody")
            parts.append(chunk)
            wanted -= len(chunk)
            self._left -= len(chunk)
        return b"".join(parts)

    def finish(self) -> None:
        if self._body.read(1):
            raise StoreError("source body is longer than its ContentLength", retryable=True,
                             code="TruncatedBody")


def entry(obj: SourceObject) -> dict[str, Any]:
    return {"bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id,
            "etag": obj.etag, "size": obj.size, "sequencer": obj.sequencer,
            "event_time": obj.event_time.isoformat().replace("+00:00", "Z")}


def readable(members: Sequence[SourceObject], open_object: ObjectOpener,
             manifest: Manifest) -> Iterator[tuple[SourceObject, OpenedObject]]:
    """Each member opened in turn, for either bundle format; one that cannot be read or is
    gone is recorded in ``manifest.missing`` and skipped. The caller closes what it gets."""
    for obj in members:
        try:
            opened = open_object(obj)
        except UnreadableObject as exc:
            manifest.missing.append({**entry(obj), "reason": f"unreadable: {exc.reason}"})
            continue
        if opened is None:
            manifest.missing.append({**entry(obj), "reason": GONE})
            continue
        yield obj, opened


def write_bundle(out: IO[bytes], key: str, members: Sequence[SourceObject],
                 open_object: ObjectOpener, *, chunk_size: int = DEFAULT_CHUNK) -> Manifest:
    """Stream ``members`` into ``out`` as one bundle; returns its manifest."""
    manifest = Manifest(key)
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as zipped, \
            tarfile.TarFile(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT,
                            copybufsize=chunk_size) as tar:
        for obj, opened in readable(members, open_object, manifest):
            try:
                name = f"objects/{len(manifest.objects):05d}"
                info = _info(name, opened.size, opened.last_modified)
                exact = ExactBody(opened.body, opened.size)
                tar.addfile(info, exact)
                exact.finish()
            finally:
                opened.close()
            manifest.objects.append({"member": name, **entry(obj), "size": opened.size})
        document = json.dumps(manifest.document(), sort_keys=True, indent=1).encode()
        tar.addfile(_info(MANIFEST, len(document), None), io.BytesIO(document))
    return manifest


def read_manifest(bundle: IO[bytes]) -> dict[str, Any]:
    """The manifest of a bundle (for tests, the harness and the demo)."""
    with tarfile.open(fileobj=bundle, mode="r:gz") as tar:
        member = tar.extractfile(MANIFEST)
        if member is None:
            raise ValueError("bundle has no manifest")
        document: dict[str, Any] = json.loads(member.read())
        return document


def _info(name: str, size: int, modified: datetime | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = int(modified.timestamp()) if modified is not None else 0
    return info
