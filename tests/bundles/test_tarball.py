"""The bundle format: a tar.gz of the objects plus a manifest, streamed in chunks."""

from __future__ import annotations

import io
import random
import tarfile
import tempfile
from datetime import UTC, datetime

import pytest

from streamagg_bundles.s3_events import SourceObject
from streamagg_bundles.tarball import OpenedObject, read_manifest, write_bundle
from streamagg_engine.errors import StoreError

MOMENT = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)


def source(key: str, size: int) -> SourceObject:
    return SourceObject("ingest", key, size, f"etag-{key}", None, "00", MOMENT)


class TrickleBody:
    """Hands out at most ``piece`` bytes per read, and remembers the largest request."""

    def __init__(self, data: bytes, piece: int) -> None:
        self._data = io.BytesIO(data)
        self._piece = piece
        self.largest_request = 0

    def read(self, amount: int = -1, /) -> bytes:
        self.largest_request = max(self.largest_request, amount)
        return self._data.read(min(self._piece, amount if amount >= 0 else self._piece))


def test_members_hold_the_objects_and_the_manifest_maps_them() -> None:
    data = {"in/a b.csv": b"alpha", "../escape": b"", "in/zoë": b"z" * 1000}
    members = [source(key, len(body)) for key, body in data.items()]
    out = io.BytesIO()
    manifest = write_bundle(out, "k.tar.gz", members,
                            lambda o: OpenedObject(io.BytesIO(data[o.key]), o.size, MOMENT))
    out.seek(0)
    with tarfile.open(fileobj=out, mode="r:gz") as tar:
        names = tar.getnames()
        contents = {name: tar.extractfile(name).read()  # type: ignore[union-attr]
                    for name in names if name.startswith("objects/")}
    assert names == ["objects/00000", "objects/00001", "objects/00002", "manifest.json"]
    document = read_manifest(io.BytesIO(out.getvalue()))
    assert document == manifest.document()
    assert document["format"] == "s3-object-bundle/1"
    for entry in document["objects"]:
        assert contents[entry["member"]] == data[entry["key"]]
    assert [e["key"] for e in document["objects"]] == list(data)


def test_bodies_are_streamed_in_chunks_into_a_spool_that_spills_to_disk() -> None:
    rng = random.Random(7)
    data = [rng.randbytes(1_500_000) for _ in range(3)]
    bodies = [TrickleBody(d, piece=70_000) for d in data]
    members = [source(f"k{i}", len(d)) for i, d in enumerate(data)]
    with tempfile.SpooledTemporaryFile(max_size=256 * 1024) as spool:
        write_bundle(spool, "k", members,
                     lambda o: OpenedObject(bodies[int(o.key[1:])], o.size, None),
                     chunk_size=64 * 1024)
        assert spool._rolled  # type: ignore[attr-defined]
        spool.seek(0)
        with tarfile.open(fileobj=spool, mode="r:gz") as tar:
            assert tar.extractfile("objects/00002").read() == data[2]  # type: ignore[union-attr]
    assert max(body.largest_request for body in bodies) <= 64 * 1024


def test_the_bytes_depend_on_the_objects_alone() -> None:
    members = [source("a", 3)]

    def build() -> bytes:
        out = io.BytesIO()
        write_bundle(out, "k", members, lambda o: OpenedObject(io.BytesIO(b"abc"), 3, MOMENT))
        return out.getvalue()

    assert build() == build()


def test_an_object_gone_before_it_was_read_is_listed_as_missing() -> None:
    out = io.BytesIO()
    manifest = write_bundle(out, "k", [source("gone", 4), source("here", 2)],
                            lambda o: None if o.key == "gone" else
                            OpenedObject(io.BytesIO(b"hi"), 2, None))
    assert [e["key"] for e in manifest.missing] == ["gone"]
    assert [e["key"] for e in manifest.objects] == ["here"]
    assert manifest.objects[0]["member"] == "objects/00000"


@pytest.mark.parametrize(("body", "size"), [(b"short", 10), (b"too long", 3)])
def test_a_body_that_disagrees_with_its_length_is_a_retryable_failure(body: bytes,
                                                                       size: int) -> None:
    with pytest.raises(StoreError) as caught:
        write_bundle(io.BytesIO(), "k", [source("a", size)],
                     lambda o: OpenedObject(io.BytesIO(body), size, None))
    assert caught.value.retryable
    assert caught.value.code == "TruncatedBody"
