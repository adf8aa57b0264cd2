"""The parts every pipeline shares: partial batch responses and skipped-record logs."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from streamagg_engine.batch import FailedRecords, log_skipped, settle
from streamagg_engine.errors import MalformedRecordError, StoreError
from streamagg_engine.metrics import emf_line


def test_a_stream_reports_only_its_first_failed_record() -> None:
    failures = FailedRecords(ordered=True)
    failures.add([("0003", "3"), ("0001", "1")])
    failures.add([("0002", "2")])
    assert failures.response() == {"batchItemFailures": [{"itemIdentifier": "1"}]}


def test_a_queue_reports_every_failed_message_once() -> None:
    failures = FailedRecords(ordered=False)
    failures.add([("b", "msg-b"), ("a", "msg-a")])
    failures.add([("b", "msg-b")])
    assert failures.response() == {"batchItemFailures": [
        {"itemIdentifier": "msg-a"}, {"itemIdentifier": "msg-b"}]}


def test_no_failure_is_an_empty_list() -> None:
    assert FailedRecords(ordered=True).response() == {"batchItemFailures": []}


def test_a_skipped_record_is_logged_with_its_id_and_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.engine")
    with caplog.at_level(logging.WARNING, logger="test.engine"):
        log_skipped(logger, MalformedRecordError("missing entity_id"), record_id="evt-1")
        log_skipped(logger, KeyError("x"), record_id="evt-2")
    first, second = caplog.records
    assert (first.event_id, first.reason) == (  # type: ignore[attr-defined]
        "evt-1", "missing entity_id")
    assert not first.exc_info
    assert second.event_id == "evt-2"  # type: ignore[attr-defined]
    assert second.reason == "unexpected shape: KeyError: 'x'"  # type: ignore[attr-defined]
    assert second.exc_info is not None


def test_settle_routes_store_errors_to_their_job_and_results_to_theirs() -> None:
    seen: list[object] = []

    def fail() -> None:
        raise StoreError("throttled", retryable=True, code="ThrottlingException")

    with ThreadPoolExecutor(2) as pool:
        settle([(pool.submit(lambda: 7), seen.append, seen.append),
                (pool.submit(fail), seen.append, lambda exc: seen.append(exc.code))])
    assert seen == [7, "ThrottlingException"]


def _dimensions(**dimension_sets: tuple[tuple[str, ...], ...]) -> object:
    line = emf_line({"records": 2}, 1.5, namespace="N", function_name="fn", timestamp_ms=0,
                    counts={"Records": "records"}, properties={}, **dimension_sets)
    document = json.loads(line)
    assert (document["FunctionName"], document["Records"]) == ("fn", 2)
    return document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]


def test_metrics_are_per_function_unless_an_empty_dimension_set_adds_them_undimensioned(
) -> None:
    assert _dimensions() == [["FunctionName"]]
    assert _dimensions(dimension_sets=(("FunctionName",), ())) == [["FunctionName"], []]
