"""Seed 001's bundle format: one gzip stream of the source objects' bytes, nothing else.

The objects are copied unchanged, in bundle order (earliest event first), one after the
other into a single gzip member: ``gunzip`` of the bundle gives their bytes concatenated,
which is what the document's consumer reads. There is no manifest and no separator, so
the boundaries are not in the bundle; the bundle record in the idempotency table lists
the members, and the object's metadata counts them (``stores.DistributionBucket``).

Streaming and determinism as in :mod:`.tarball`: ``chunk_size`` pieces from each body into
gzip into ``out``; the gzip header carries no timestamp, so the bytes depend on the objects
alone. Objects that are gone or unreadable are left out and listed in the returned
manifest's ``missing``, exactly as in a tarball.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Sequence
from typing import IO

from .s3_events import SourceObject
from .tarball import DEFAULT_CHUNK, ExactBody, Manifest, ObjectOpener, entry, readable


def write_concatenated(out: IO[bytes], key: str, members: Sequence[SourceObject],
                       open_object: ObjectOpener, *,
                       chunk_size: int = DEFAULT_CHUNK) -> Manifest:
    """Stream ``members`` into ``out`` as one gzip. The returned manifest, which is not
    written into the bundle, gives each object's ``offset`` in the uncompressed stream;
    the pipeline counts and logs from it."""
    manifest = Manifest(key)
    offset = 0
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as zipped:
        for obj, opened in readable(members, open_object, manifest):
            try:
                exact = ExactBody(opened.body, opened.size)
                shutil.copyfileobj(exact, zipped, chunk_size)
                exact.finish()
            finally:
                opened.close()
            manifest.objects.append({"offset": offset, **entry(obj), "size": opened.size})
            offset += opened.size
    return manifest
