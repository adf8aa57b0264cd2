"""A batch through the pipeline on in-memory stores: skips, dedup, failures, the response."""

from __future__ import annotations

import gzip
import json
import logging
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local_aws.events_harness import LOOKUP_TABLE, METRICS_TABLE
from streamagg_events.enrich import UNASSIGNED

from .support import Memory, document, raw_record, record

DAY = "2026-01-31T00:00:00Z"
HOUR = "2026-01-31T23:00:00Z"


class Failing:
    """A client whose ``operation`` fails with ``code``; everything else passes through."""

    def __init__(self, inner: Any, operation: str, code: str = "InternalServerError") -> None:
        self.inner, self.operation, self.code = inner, operation, code
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.inner, name)

        def counted(**kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if name == self.operation:
                raise ClientError({"Error": {"Code": self.code, "Message": "injected"}}, name)
            return call(**kwargs)
        return counted


def test_events_become_counts_sums_and_unique_users_per_variant_and_window() -> None:
    memory = Memory()
    result = memory.process([
        record(document(1), 10), record(document(2, value=Decimal("0.25")), 11),
        record(document(3, user_id="bob", event_type="click"), 12, "bob"),
        record(document(4, user_id="carol", event_type="exposure"), 13, "carol"),
    ])
    assert result.counted_events == 4
    assert result.response() == {"batchItemFailures": []}
    green = memory.counter("exp-1", "green", "daily", DAY)
    assert green == {"events": 2, "n_purchase": 2, "s_purchase": Decimal("12.75")}
    assert memory.counter("exp-1", "green", "hourly", HOUR) == green
    assert memory.counter("exp-1", "control", "daily", DAY)["n_click"] == 1
    assert memory.counter("exp-1", UNASSIGNED, "daily", DAY)["n_exposure"] == 1
    users = [i for i in memory.ddb.items(METRICS_TABLE) if "#USERS#" in i["sk"]["S"]
             and i["window"]["S"] == "daily" and i["variant"]["S"] == "green"]
    assert [u["users"]["SS"] for u in users] == [["alice"]]


def test_malformed_records_are_logged_with_their_id_and_the_batch_proceeds(
        caplog: pytest.LogCaptureFixture) -> None:
    memory = Memory()
    with caplog.at_level(logging.WARNING, logger="streamagg_events"):
        result = memory.process([
            record("!!!", 20), raw_record(b"{oops", 21), record(document(3, user_id=None), 22),
            record(document(4, experiment_id="retired"), 23), record(document(5), 24),
        ])
    assert result.skipped_malformed == 4
    assert result.unknown_experiments == 1
    assert result.counted_events == 1
    assert result.response() == {"batchItemFailures": []}
    reasons = {r.event_id: r.reason for r in caplog.records}  # type: ignore[attr-defined]
    assert reasons == {
        "shardId-000000000000:20": "kinesis.data is not valid base64",
        "shardId-000000000000:21": reasons["shardId-000000000000:21"],
        "shardId-000000000000:22": "schema: user_id: required",
        "shardId-000000000000:23": "unknown experiment 'retired'",
    }
    assert reasons["shardId-000000000000:21"].startswith("payload is not JSON")


def test_lookups_are_one_batch_read_of_the_distinct_keys() -> None:
    memory = Memory()
    spy = Failing(memory.ddb, "none")
    memory.process([record(document(i, user_id=("alice", "bob")[i % 2]), 100 + i)
                    for i in range(200)], ddb=spy)
    assert spy.calls["batch_get_item"] == 1


def test_a_redelivered_batch_changes_no_counter() -> None:
    memory = Memory()
    batch = [record(document(i), 30 + i) for i in range(50)]
    memory.process(batch)
    before = memory.counter("exp-1", "green", "daily", DAY)
    again = memory.process(batch)
    assert again.counted_events == 0
    assert again.already_counted == 50
    assert memory.counter("exp-1", "green", "daily", DAY) == before == {
        "events": 50, "n_purchase": 50, "s_purchase": Decimal("625.00")}


def test_an_event_a_producer_sent_twice_counts_once_in_one_batch_or_two() -> None:
    memory = Memory()
    first = memory.process([record(document(1), 40), record(document(1), 41)])
    second = memory.process([record(document(1), 57)])
    assert (first.duplicates_in_batch, first.counted_events) == (1, 1)
    assert (second.already_counted, second.counted_events) == (1, 0)
    assert memory.counter("exp-1", "green", "daily", DAY)["events"] == 1


def test_a_failed_counter_write_reports_the_numerically_lowest_sequence_number() -> None:
    memory = Memory()
    failing = Failing(memory.ddb, "transact_write_items", "ProvisionedThroughputExceededException")
    result = memory.process([record(document(1), 9), record(document(2), 10)], ddb=failing)
    assert result.failed_writes == 1
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": "9"}]}
    retried = memory.process([record(document(1), 9), record(document(2), 10)])
    assert retried.counted_events == 2


def test_a_failed_lookup_fails_the_batch_from_its_first_record() -> None:
    memory = Memory()
    result = memory.process([record(document(1), 70), record(document(2), 71)],
                            ddb=Failing(memory.ddb, "batch_get_item"))
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": "70"}]}
    assert memory.ddb.items(METRICS_TABLE) == []


def test_a_failed_archive_put_fails_its_events_but_the_counts_stand() -> None:
    memory = Memory()
    result = memory.process([record(document(1), 80), record(document(2), 81)],
                            s3=Failing(memory.s3, "put_object", "SlowDown"))
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": "80"}]}
    assert memory.counter("exp-1", "green", "daily", DAY)["events"] == 2
    memory.process([record(document(1), 80), record(document(2), 81)])
    assert memory.counter("exp-1", "green", "daily", DAY)["events"] == 2
    assert len(memory.s3.objects) == 1


class NoReasons:
    """An endpoint that cancels a transaction without saying which condition failed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        try:
            return self.inner.transact_write_items(**kwargs)
        except ClientError as exc:
            exc.response.pop("CancellationReasons", None)
            raise


def test_markers_are_read_back_when_a_cancellation_gives_no_reasons() -> None:
    memory = Memory()
    memory.process([record(document(1), 90)])
    result = memory.process([record(document(1), 90), record(document(2), 91)],
                            ddb=NoReasons(memory.ddb))
    assert (result.already_counted, result.counted_events) == (1, 1)
    assert memory.counter("exp-1", "green", "daily", DAY)["events"] == 2


def test_lookup_items_are_never_written() -> None:
    memory = Memory()
    before = memory.ddb.items(LOOKUP_TABLE)
    memory.process([record(document(i), 200 + i) for i in range(10)])
    assert memory.ddb.items(LOOKUP_TABLE) == before


class CancelledOnce:
    """Cancels the first transaction with ``code`` on every action, then passes through."""

    def __init__(self, inner: Any, code: str) -> None:
        self.inner, self.code, self.cancelled = inner, code, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        if self.cancelled == 0:
            self.cancelled += 1
            raise ClientError({
                "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                "CancellationReasons": [{"Code": self.code}] * len(kwargs["TransactItems"])},
                "TransactWriteItems")
        return self.inner.transact_write_items(**kwargs)


def test_a_transaction_conflict_is_retried_within_the_invocation() -> None:
    memory = Memory()
    result = memory.process([record(document(1), 300)],
                            ddb=CancelledOnce(memory.ddb, "TransactionConflict"))
    assert result.response() == {"batchItemFailures": []}
    assert memory.counter("exp-1", "green", "daily", DAY)["events"] == 1


def test_a_transaction_refused_for_good_fails_its_records() -> None:
    memory = Memory()
    result = memory.process([record(document(1), 301)],
                            ddb=CancelledOnce(memory.ddb, "ValidationError"))
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": "301"}]}
    assert result.failed_writes == 1


def test_the_archive_line_carries_the_time_since_the_users_assignment() -> None:
    memory = Memory()
    memory.process([
        record(document(1), 10),
        record(document(2, timestamp="2026-01-30T23:00:00Z"), 11),
        record(document(3, user_id="bob"), 12, "bob"),
        record(document(4, user_id="carol"), 13, "carol"),
    ])
    lines = [json.loads(line) for body in memory.s3.objects.values()
             for line in gzip.decompress(body).splitlines()]
    since = {line["event_id"]: line["ms_since_assignment"] for line in lines}
    # alice was assigned at 2026-01-31T00:00:00Z; bob's assignment has no time; carol has none.
    assert since == {"ev-1": 84_600_000, "ev-2": -3_600_000, "ev-3": None, "ev-4": None}


def test_nested_properties_reach_the_archive_as_sent() -> None:
    memory = Memory()
    properties = {"page": "/cart", "cart": {"items": [{"sku": "a-1", "qty": 2}], "total": 12.5},
                  "tags": ["new", "mobile"], "referrer": None}
    memory.process([record(document(1, properties=properties), 10)])
    (body,) = memory.s3.objects.values()
    (line,) = [json.loads(text) for text in gzip.decompress(body).splitlines()]
    assert line["properties"] == properties
