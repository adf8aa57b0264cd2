"""The engine's guards on their own: bounds before work, DynamoDB's limits, the error classes
every pipeline shares, and the split that isolates a refused record."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from streamagg_engine.batch import FirstSeen, isolate_rejected
from streamagg_engine.bounds import check_decimal, check_json, parse_instant
from streamagg_engine.errors import MalformedRecordError, StoreError
from streamagg_engine.limits import ITEM_BYTES, check_item, check_key
from streamagg_engine.stores import SOURCE_UNREADABLE, to_store_error
from streamagg_events.schema import timestamp_ms


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                                  "9999-12-01T00:00:00Z", "1969-12-31T23:59:59Z",
                                  "2" * 65, "yesterday"])
def test_times_the_windows_cannot_hold_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(MalformedRecordError, match=r"^eventTime: "):
        parse_instant(text, "eventTime")


def test_a_time_within_the_bounds_comes_back_in_utc() -> None:
    assert parse_instant("9999-11-30T23:59:59-00:00", "t") == \
        datetime(9999, 11, 30, 23, 59, 59, tzinfo=UTC)
    assert parse_instant("2026-01-31T23:30:00", "t", naive_utc=True).tzinfo is UTC
    with pytest.raises(MalformedRecordError, match="no time zone"):
        parse_instant("2026-01-31T23:30:00", "t")


def test_a_number_of_eight_bytes_and_400000_digits_is_refused_at_once() -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match="between 2000 and 2100"):
        timestamp_ms(Decimal("1e400000"))
    with pytest.raises(MalformedRecordError, match="outside"):
        check_decimal(Decimal("-1e400000"), "n")
    assert time.perf_counter() - started < 0.05
    assert check_decimal(Decimal("1769900000000"), "n") == Decimal("1769900000000")


def test_json_nesting_is_refused_past_32_levels_without_recursion() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    started = time.perf_counter()
    with pytest.raises(MalformedRecordError, match="nested deeper than 32"):
        check_json(deep, "properties")
    assert time.perf_counter() - started < 0.05
    shallow: Any = 1
    for _ in range(31):
        shallow = {"x": shallow}
    check_json(shallow, "properties")


@pytest.mark.parametrize("value", [{"k": "\ud83d"}, {"\udc00": 1}, [Decimal("NaN")], [10**40]])
def test_json_that_no_encoder_or_source_produces_is_refused(value: Any) -> None:
    with pytest.raises(MalformedRecordError, match=r"^properties: "):
        check_json(value, "properties")


@pytest.mark.parametrize(("value", "kwargs", "fits"), [
    ("p" * 2048, {}, True), ("p" * 2049, {}, False),
    ("s" * 1024, {"sort": True}, True), ("s" * 1025, {"sort": True}, False),
    ("é" * 512, {"sort": True}, True), ("é" * 513, {"sort": True}, False),
    ("i" * 1024, {"index": True}, True), ("i" * 1025, {"index": True}, False),
    ("", {"index": True}, False), ("", {}, False), ("\ud83d", {}, False),
])
def test_key_values_are_held_to_dynamodbs_limits(value: str, kwargs: dict[str, bool],
                                                 fits: bool) -> None:
    if fits:
        assert check_key(value, "GSI4PK", **kwargs) == value
    else:
        with pytest.raises(MalformedRecordError, match=r"^GSI4PK: "):
            check_key(value, "GSI4PK", **kwargs)


def test_an_item_over_400_kb_is_refused_and_one_under_it_is_measured() -> None:
    item: dict[str, Any] = {"pk": {"S": "k"}, "text": {"S": "t" * (ITEM_BYTES - 20)}}
    assert check_item(item) == ITEM_BYTES - 20 + len("pk") + 1 + len("text")
    item["more"] = {"L": [{"N": "12345"}] * 10}
    with pytest.raises(MalformedRecordError, match="400 KB"):
        check_item(item)


def _client_error(code: str) -> ClientError:
    return ClientError(cast(Any, {"Error": {"Code": code, "Message": code}}), "Op")


@pytest.mark.parametrize(("exc", "codes", "expected"), [
    (_client_error("ValidationException"), None, "permanent"),
    (_client_error("ThrottlingException"), None, "retryable"),
    (_client_error("ProvisionedThroughputExceededException"), None, "retryable"),
    (_client_error("AccessDeniedException"), None, "failed"),
    (_client_error("ResourceNotFoundException"), None, "failed"),
    (_client_error("AccessDenied"), None, "failed"),
    (_client_error("AccessDenied"), SOURCE_UNREADABLE, "permanent"),
    (_client_error("NoSuchBucket"), SOURCE_UNREADABLE, "permanent"),
    (_client_error("SlowDown"), SOURCE_UNREADABLE, "retryable"),
    (ParamValidationError(report="Invalid bucket name"), None, "permanent"),
    (UnicodeEncodeError("utf-8", "\ud83d", 0, 1, "surrogates not allowed"), None, "permanent"),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), None, "retryable"),
])
def test_every_failure_falls_in_one_class(exc: Exception, codes: frozenset[str] | None,
                                          expected: str) -> None:
    error = to_store_error(exc, "write") if codes is None else \
        to_store_error(exc, "read", codes)
    found = "permanent" if error.permanent else "retryable" if error.retryable else "failed"
    assert found == expected
    assert not (error.permanent and error.retryable)


def test_a_refused_record_is_split_off_and_the_others_are_written() -> None:
    written: list[int] = []

    def write(items: Sequence[int]) -> int:
        if 17 in items:
            raise StoreError("refused", retryable=False, code="ValidationException",
                             permanent=True)
        written.extend(items)
        return len(items)

    outcome = isolate_rejected(list(range(25)), write)
    assert sorted(written) == [i for i in range(25) if i != 17]
    assert [item for item, _ in outcome.rejected] == [17]
    assert outcome.requests <= 2 * 5 + 1


def test_a_retryable_failure_is_not_split() -> None:
    calls: list[Sequence[int]] = []

    def write(items: Sequence[int]) -> None:
        calls.append(items)
        raise StoreError("throttled", retryable=True, code="ThrottlingException")

    with pytest.raises(StoreError, match="throttled"):
        isolate_rejected([1, 2, 3], write)
    assert calls == [[1, 2, 3]]


def test_a_record_counts_the_first_time_it_is_seen_in_a_batch() -> None:
    seen = FirstSeen()
    assert [seen.first(i) for i in ("1", "2", "1", "2", "3")] == \
        [True, True, False, False, True]
