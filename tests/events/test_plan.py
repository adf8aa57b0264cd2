"""Planning: transactions within DynamoDB's limit, user shards, archive objects and keys."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from streamagg_events.config import EventMetricsConfig
from streamagg_events.enrich import Enriched
from streamagg_events.kinesis import parse_record
from streamagg_events.processor import (
    Counted,
    counter_keys,
    plan_archive,
    plan_transactions,
    plan_user_sets,
    user_shard,
)
from streamagg_events.schema import event_schema, validate

from .support import document, record

CONFIG = EventMetricsConfig()
SCHEMA = event_schema(CONFIG.event_types)


def counted(index: int, *, variant: str = "green", experiment: str = "exp-1",
            hour: int = 23, user: str = "alice", **fields: object) -> Counted:
    doc = document(index, experiment_id=experiment, user_id=user,
                   timestamp=f"2026-01-31T{hour:02d}:15:00Z", **fields)
    event = validate(doc, SCHEMA)
    return Counted(parse_record(record(doc, 1000 + index)),
                   Enriched(event, variant, experiment, None))


@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["x", "y"]),
                          st.integers(0, 23)), min_size=1, max_size=300),
       st.integers(4, 100))
def test_transactions_fit_the_limit_and_carry_each_event_with_its_counters(
        events: list[tuple[str, str, int]], size: int) -> None:
    config = EventMetricsConfig(transaction_size=size)
    items = [counted(i, experiment=e, variant=v, hour=h) for i, (e, v, h) in enumerate(events)]
    lanes = plan_transactions(items, config)
    planned = [t for lane in lanes for t in lane]
    assert sorted(e.enriched.event.event_id for t in planned for e in t.events) == \
        sorted(i.enriched.event.event_id for i in items)
    for transaction in planned:
        counters = transaction.counters()
        assert len(transaction.events) + len(counters) <= size
        for item in transaction.events:
            assert set(counter_keys(item, config.windows)) <= set(counters)
    for lane in lanes:
        assert len({(e.enriched.event.experiment_id, e.enriched.variant)
                    for t in lane for e in t.events}) == 1


def test_counters_add_counts_and_exact_sums_per_type_and_window() -> None:
    items = [counted(1, value=Decimal("0.1")), counted(2, value=Decimal("0.2")),
             counted(3, event_type="click", value=None)]
    (lane,) = plan_transactions(items, CONFIG)
    counters = lane[0].counters()
    daily = next(v for k, v in counters.items() if k.window == "daily")
    assert daily == {"events": 3, "n_purchase": 2, "s_purchase": Decimal("0.3"),
                     "n_click": 1, "s_click": 0}
    assert {k.sk for k in counters} == {"daily#2026-01-31T00:00:00Z#VARIANT#green",
                                        "hourly#2026-01-31T23:00:00Z#VARIANT#green"}


def test_a_transaction_without_some_events_adds_only_the_others() -> None:
    (lane,) = plan_transactions([counted(1), counted(2, value=Decimal(3))], CONFIG)
    rest = lane[0].without({"ev-1"})
    assert [e.enriched.event.event_id for e in rest.events] == ["ev-2"]
    assert {v["s_purchase"] for v in rest.counters().values()} == {Decimal(3)}


def test_users_land_in_one_stable_shard_per_window() -> None:
    config = EventMetricsConfig(unique_user_shards=8)
    updates = plan_user_sets([counted(i, user=f"u{i % 5}") for i in range(40)], config)
    assert {u.key.window for u in updates} == {"hourly", "daily"}
    for update in updates:
        assert all(user_shard(user, 8) == update.shard for user in update.users)
    assert sum(len(u.users) for u in updates if u.key.window == "daily") == 5


def test_archive_objects_are_per_event_hour_under_hive_partitions() -> None:
    objects = plan_archive([counted(1, hour=22), counted(2, hour=23), counted(3, hour=23)],
                           EventMetricsConfig(), "shardId-000000000001")
    assert [o.key for o in objects] == [
        "events/year=2026/month=01/day=31/hour=22/events-shardId-000000000001-1001-1001"
        ".jsonl.gz",
        "events/year=2026/month=01/day=31/hour=23/events-shardId-000000000001-1002-1003"
        ".jsonl.gz",
    ]
    lines = [json.loads(line) for line in gzip.decompress(objects[1].body).splitlines()]
    assert [line["event_id"] for line in lines] == ["ev-2", "ev-3"]
    assert lines[0]["value"] == 12.5
    assert lines[0]["variant"] == "green"
    assert lines[0]["arrived_at"] == "2026-01-31T22:53:20.000Z"
    assert lines[0]["timestamp"] == "2026-01-31T23:15:00.000Z"


def test_archive_objects_are_cut_at_the_event_count_and_byte_limits() -> None:
    items = [counted(i) for i in range(25)]
    by_count = plan_archive(items, EventMetricsConfig(archive_max_events=10), "s")
    assert [len(o.events) for o in by_count] == [10, 10, 5]
    big = [counted(i, properties={"blob": "x" * 600}) for i in range(10)]
    by_size = plan_archive(big, EventMetricsConfig(archive_max_bytes=2048), "s")
    assert all(len(gzip.decompress(o.body)) <= 2048 for o in by_size)
    assert sum(len(o.events) for o in by_size) == 10
    assert len(by_size) > 1


def test_the_same_records_give_the_same_keys_and_bytes() -> None:
    first = plan_archive([counted(i) for i in range(5)], CONFIG, "s")
    again = plan_archive([counted(i) for i in reversed(range(5))], CONFIG, "s")
    assert [(o.key, o.body) for o in first] == [(o.key, o.body) for o in again]
