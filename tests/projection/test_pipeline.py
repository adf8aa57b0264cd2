from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from streamagg_engine.errors import StoreError
from streamagg_projection.config import ProjectionConfig
from streamagg_projection.handler import Runtime, handle
from streamagg_projection.stores import WriteOutcome

from .support import image, record

CONFIG = ProjectionConfig(dashboard_table_name="dash")


class Store:
    """Writes into a dict; fails the chunks or leaves the keys it is told to."""

    def __init__(self, *, fail_sk: str | None = None, leave_sk: str | None = None) -> None:
        self.items: dict[tuple[str, str], Any] = {}
        self.fail_sk, self.leave_sk = fail_sk, leave_sk

    def write(self, requests: Sequence[dict[str, Any]]) -> WriteOutcome:
        left = []
        for request in requests:
            body = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
            key = (body["day_partition"]["S"], body["sk"]["S"])
            if self.fail_sk and key[1].startswith(self.fail_sk):
                raise StoreError("throttled", retryable=True, code="Throttling")
            if self.leave_sk and key[1].startswith(self.leave_sk):
                left.append(request)
            elif "PutRequest" in request:
                self.items[key] = body
            else:
                self.items.pop(key, None)
        return WriteOutcome(unprocessed=left, calls=2 if left else 1)


def run(store: Store, *records: dict[str, Any]) -> dict[str, Any]:
    runtime = Runtime(CONFIG, store, ThreadPoolExecutor(2), "test")
    return handle({"Records": list(records)}, runtime, now_ms=0)


def test_a_malformed_record_is_logged_with_its_event_id_counted_and_skipped(
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store()
    with caplog.at_level(logging.WARNING):
        response = run(store, record(None, image("a", score=None), event_id="evt-bad"),
                       record(None, image("b", tags=["AI"])),
                       record(None, image("p", status="pending", score=None)))
    assert response == {"batchItemFailures": []}
    assert len(store.items) == 2
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.event_id == "evt-bad"  # type: ignore[attr-defined]
    assert "'score'" in warning.reason  # type: ignore[attr-defined]
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["RecordsSkipped"] == 1
    assert metrics["ItemsPut"] == 2
    assert metrics["RecordsIgnored"] == 1  # the pending one; the malformed one is skipped


def test_unprocessed_items_fail_their_source_items_records_from_the_first() -> None:
    store = Store(leave_sk="TAG#europe")
    first = image("b", tags=["AI"])
    response = run(store, record(None, image("a"), sequence=1),
                   record(None, first, sequence=2),
                   record(first, image("b", tags=["AI", "europe"]), sequence=3),
                   record(None, image("c"), sequence=4))
    # b's batch write left one item: all of b's records are retried, from b's first.
    assert response == {"batchItemFailures": [{"itemIdentifier": "2"}]}


def test_a_failed_chunk_fails_every_item_it_carried() -> None:
    store = Store(fail_sk="2025")
    response = run(store, record(None, image("a"), sequence=5))
    assert response == {"batchItemFailures": [{"itemIdentifier": "5"}]}


def test_an_empty_batch_is_answered_without_writes() -> None:
    assert run(Store()) == {"batchItemFailures": []}
