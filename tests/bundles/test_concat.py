"""Seed 001's format: one gzip whose content is the objects' bytes, streamed in chunks."""

from __future__ import annotations

import gzip
import io

import pytest

from streamagg_bundles.concat import write_concatenated
from streamagg_bundles.tarball import GONE, OpenedObject, UnreadableObject
from streamagg_engine.errors import StoreError
from tests.bundles.test_tarball import MOMENT, TrickleBody, source


def test_gunzip_gives_the_objects_bytes_in_bundle_order_and_offsets_locate_them() -> None:
    data = {"in/a.csv": b"alpha\n", "in/empty": b"", "in/zoë": bytes(range(256)) * 40}
    members = [source(key, len(body)) for key, body in data.items()]
    bodies = {key: TrickleBody(body, 7) for key, body in data.items()}
    out = io.BytesIO()

    manifest = write_concatenated(
        out, "2026/03/31/23/bundle-x.gz", members,
        lambda o: OpenedObject(bodies[o.key], o.size, MOMENT), chunk_size=64)

    content = gzip.decompress(out.getvalue())
    assert content == b"".join(data.values())
    for found in manifest.objects:
        assert content[found["offset"]:found["offset"] + found["size"]] == data[found["key"]]
    assert max(body.largest_request for body in bodies.values()) <= 64
    assert manifest.input_bytes == len(content)


def test_gone_and_unreadable_objects_are_left_out_and_listed() -> None:
    members = [source("gone", 4), source("denied", 3), source("here", 2)]

    def open_object(obj: object) -> OpenedObject | None:
        key = getattr(obj, "key")  # noqa: B009
        if key == "gone":
            return None
        if key == "denied":
            raise UnreadableObject("AccessDenied")
        return OpenedObject(io.BytesIO(b"ok"), 2, MOMENT)

    out = io.BytesIO()
    manifest = write_concatenated(out, "k.gz", members, open_object)

    assert gzip.decompress(out.getvalue()) == b"ok"
    assert [(m["key"], m["reason"]) for m in manifest.missing] == \
        [("gone", GONE), ("denied", "unreadable: AccessDenied")]


def test_the_same_objects_give_the_same_bytes() -> None:
    members = [source("a", 3)]

    def write() -> bytes:
        out = io.BytesIO()
        write_concatenated(out, "k.gz", members,
                           lambda o: OpenedObject(io.BytesIO(b"abc"), 3, MOMENT))
        return out.getvalue()

    assert write() == write()


def test_a_body_shorter_than_its_length_is_a_retryable_error() -> None:
    with pytest.raises(StoreError, match="ended 2 bytes early") as caught:
        write_concatenated(io.BytesIO(), "k.gz", [source("a", 5)],
                           lambda o: OpenedObject(io.BytesIO(b"abc"), 5, MOMENT))
    assert caught.value.retryable
