import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.chain import CountedRange, reconcile
from aggregator.config import AggregatorConfig
from aggregator.processor import decode_change, is_source_record, plan_snapshots, whole_tokens
from streamagg_engine.errors import MalformedRecordError
from streamagg_engine.records import parse_record
from streamagg_engine.windows import Window, window_key
from tests.factories import NS, bucket_record, n

CONFIG = AggregatorConfig()


def decode(raw: dict[str, Any]) -> Any:
    return decode_change(parse_record(raw), CONFIG)


def totals(update: Any, stored: dict[str, CountedRange] | None = None,
           ) -> tuple[dict[str, int], int]:
    """What the store adds for ``update`` to an item holding ``stored``: tokens, events."""
    tokens: dict[str, int] = {}
    events = 0
    for source, run in update.by_source.items():
        reconciled = reconcile(run, (stored or {}).get(source), CONFIG.counter_scale)
        events += reconciled.events
        for name, amount in reconciled.tokens.items():
            tokens[name] = tokens.get(name, 0) + amount
    return tokens, events


def test_limits_are_discovered_by_scanning_tc_attributes() -> None:
    change = decode(bucket_record("MODIFY", {"rpm": 1000, "tpm": 5000},
                                  {"rpm": 2000, "tpm": 9000}))
    assert change.millis == {"rpm": (1000, 2000), "tpm": (5000, 9000)}
    assert (change.namespace, change.entity, change.resource) == (NS, "user-1", "gpt-4")


def test_the_first_consumption_arrives_as_an_insert_and_is_counted() -> None:
    change = decode(bucket_record("INSERT", None, {"rpm": 1000, "tpm": 500_000}))
    assert change.millis == {"rpm": (0, 1000), "tpm": (0, 500_000)}


def test_the_internal_wcu_limit_is_not_snapshotted() -> None:
    change = decode(bucket_record("MODIFY", {"rpm": 0, "wcu": 0}, {"rpm": 1000, "wcu": 1000}))
    assert set(change.millis) == {"rpm"}


def test_a_record_that_moves_no_counter_yields_nothing() -> None:
    assert decode(bucket_record("MODIFY", {"rpm": 1000}, {"rpm": 1000})) is None


def test_removal_of_a_bucket_counts_nothing() -> None:
    raw = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000})
    raw["eventName"] = "REMOVE"
    raw["dynamodb"]["OldImage"] = raw["dynamodb"].pop("NewImage")
    assert decode(raw) is None


def test_a_counter_in_only_one_image_of_a_modify_is_skipped() -> None:
    raw = bucket_record("MODIFY", {"rpm": 1000}, {"rpm": 2000, "tpm": 500})
    assert decode(raw).millis == {"rpm": (1000, 2000)}


@pytest.mark.parametrize(("attribute", "value", "reason"), [
    ("entity_id", None, "missing entity_id"),
    ("b_rpm_tc", {"N": "1.5"}, "not a whole DynamoDB number"),
])
def test_unusable_bucket_records_are_malformed(
    attribute: str, value: dict[str, str] | None, reason: str
) -> None:
    raw = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000})
    if value is None:
        del raw["dynamodb"]["NewImage"][attribute]
    else:
        raw["dynamodb"]["NewImage"][attribute] = value
    with pytest.raises(MalformedRecordError, match=reason):
        decode(raw)


def test_a_bucket_without_a_resource_attribute_takes_it_from_its_key() -> None:
    raw = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, entity="a#b", resource="x#y")
    del raw["dynamodb"]["NewImage"]["resource"]
    assert (decode(raw).entity, decode(raw).resource) == ("a#b", "x#y")


@pytest.mark.parametrize("pk", [f"{NS}/BUCKET#user-1#0", f"{NS}/BUCKET#user-1#gpt-4#x",
                                f"{NS}/BUCKET#other#gpt-4#0"])
def test_a_bucket_naming_its_resource_nowhere_is_malformed(pk: str) -> None:
    raw = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000})
    raw["dynamodb"]["NewImage"]["resource"] = {"S": ""}
    raw["dynamodb"]["Keys"]["PK"] = {"S": pk}
    with pytest.raises(MalformedRecordError, match="missing resource"):
        decode(raw)


def legacy_record(old_tc: int, new_tc: int, sk: str = "#BUCKET#gpt-4") -> dict[str, Any]:
    """A pre-0.9 bucket: ``{ns}/ENTITY#{entity}``, ``#BUCKET#{resource}``, no resource."""
    raw = bucket_record("MODIFY", {"rpm": old_tc}, {"rpm": new_tc})
    keys = {"PK": {"S": f"{NS}/ENTITY#user-1"}, "SK": {"S": sk}}
    raw["dynamodb"]["Keys"] = keys
    for image in (raw["dynamodb"]["OldImage"], raw["dynamodb"]["NewImage"]):
        image.update(keys)
        del image["resource"]
    return raw


def test_a_pre_0_9_bucket_is_a_source_with_its_resource_in_the_sort_key() -> None:
    record = parse_record(legacy_record(0, 2000))
    assert is_source_record(record, CONFIG)
    change = decode_change(record, CONFIG)
    assert change is not None
    assert (change.namespace, change.entity, change.resource) == (NS, "user-1", "gpt-4")
    assert change.source_key == f"{NS}/ENTITY#user-1|#BUCKET#gpt-4"


@pytest.mark.parametrize("sk", ["#META", "#USAGE#gpt-4#2024-01-01T00:00:00Z#hourly",
                                "#LIMIT#gpt-4#tpm"])
def test_other_items_of_an_entity_are_not_sources(sk: str) -> None:
    assert not is_source_record(parse_record(legacy_record(0, 1000, sk=sk)), CONFIG)


def test_a_key_without_a_namespace_is_skipped_as_pre_0_7() -> None:
    raw = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000})
    raw["dynamodb"]["Keys"]["PK"] = {"S": "BUCKET#user-1#gpt-4#0"}
    with pytest.raises(MalformedRecordError, match="without a namespace"):
        decode(raw)


SOFT = {"b_tpm_soft": n(1_704_067_260_000)}


@pytest.mark.parametrize(("extra", "old", "new", "tk", "marked"), [
    (SOFT, 0, 5_000_000, -4_000_000, True),
    (SOFT, 0, 5_000_000, 1_000, False),  # still in credit
    (SOFT, 5_000_000, 0, -4_000_000, False),  # a refund, not a debit
    ({}, 0, 5_000_000, -4_000_000, False),  # hard debt (an adjust) is not an overdraw
    ({"b_tpm_soft": {"BOOL": True}}, 0, 5_000_000, -1, True),  # a pre-release stamp
])
def test_a_debit_of_a_soft_limit_into_debt_is_marked_overdrawn(
    extra: dict[str, Any], old: int, new: int, tk: int, marked: bool,
) -> None:
    raw = bucket_record("MODIFY", {"tpm": old}, {"tpm": new}, tk={"tpm": tk}, extra=extra)
    assert decode(raw).marks == ({"tpm#od": 1} if marked else {})


def test_events_are_the_limits_a_record_moved_and_marks_ride_with_the_tokens() -> None:
    raws = [bucket_record("MODIFY", {"tpm": 0, "rpm": 0}, {"tpm": 5_000_000, "rpm": 1000},
                          tk={"tpm": -1}, extra=SOFT, sequence="100"),
            bucket_record("MODIFY", {"tpm": 5_000_000, "rpm": 1000},
                          {"tpm": 4_000_000, "rpm": 1000}, extra=SOFT, sequence="101")]
    pairs = [(r, c) for r in map(parse_record, raws) if (c := decode_change(r, CONFIG))]
    hourly = plan_snapshots(pairs, CONFIG)[0]
    assert totals(hourly) == ({"tpm": 4000, "rpm": 1, "tpm#od": 1}, 3)


def test_a_modify_without_old_image_is_malformed() -> None:
    raw = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000})
    del raw["dynamodb"]["OldImage"]
    with pytest.raises(MalformedRecordError, match="OldImage"):
        decode(raw)


def test_millitokens_become_whole_tokens_by_floor_of_the_cumulative_counter() -> None:
    assert whole_tokens({"a": (0, 2500), "b": (1500, 1999), "c": (2500, 1000)}, 1000) == \
        {"a": 2, "c": -1}


@given(st.lists(st.integers(-5_000, 50_000), min_size=1, max_size=40))
def test_fractions_are_never_lost_across_records(steps: Sequence[int]) -> None:
    totals = [0]
    for step in steps:
        totals.append(totals[-1] + step)
    counted = sum(whole_tokens({"x": (a, b)}, 1000).get("x", 0)
                  for a, b in itertools.pairwise(totals))
    assert counted == totals[-1] // 1000


def test_records_are_coalesced_into_one_update_per_snapshot_item_and_window() -> None:
    config = AggregatorConfig(snapshot_windows=(Window.HOURLY, Window.DAILY))
    raws = [
        bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, created=1_700_000_000),
        bucket_record("MODIFY", {"rpm": 1000}, {"rpm": 3000}, created=1_700_000_100),
        bucket_record("MODIFY", {"rpm": 3000}, {"rpm": 4000}, created=1_700_000_000 + 7200),
    ]
    pairs = [(r, decode_change(r, config)) for r in map(parse_record, raws)]
    updates = {(u.key.window, u.key.window_key): totals(u) for u in
               plan_snapshots([(r, c) for r, c in pairs if c], config)}
    assert updates == {
        (Window.HOURLY, "2023-11-14T22:00:00Z"): ({"rpm": 3}, 2),
        (Window.HOURLY, "2023-11-15T00:00:00Z"): ({"rpm": 1}, 1),
        (Window.DAILY, "2023-11-14T00:00:00Z"): ({"rpm": 3}, 2),
        (Window.DAILY, "2023-11-15T00:00:00Z"): ({"rpm": 1}, 1),
    }


def test_refunds_subtract_from_the_window_they_happen_in() -> None:
    raws = [bucket_record("MODIFY", {"tpm": 500_000}, {"tpm": 300_000})]
    pairs = [(r, decode_change(r, CONFIG)) for r in map(parse_record, raws)]
    found = {u.key.window: totals(u) for u in plan_snapshots([(r, c) for r, c in pairs if c],
                                                                CONFIG)}
    assert found[Window.HOURLY] == ({"tpm": -200}, 1)


def test_records_inside_the_counted_range_add_nothing_the_rest_continue_it() -> None:
    raws = [bucket_record("MODIFY", {"rpm": i * 1000}, {"rpm": (i + 1) * 1000},
                          sequence=str(100 + i)) for i in range(3)]
    pairs = [(r, decode_change(r, CONFIG)) for r in map(parse_record, raws)]
    (update, _daily) = plan_snapshots([(r, c) for r, c in pairs if c], CONFIG)
    source = next(iter(update.by_source))
    counted = CountedRange("100".zfill(40), {"rpm": 0}, "101".zfill(40), {"rpm": 2000})
    assert totals(update, {source: counted}) == ({"rpm": 1}, 1)
    everything = CountedRange("100".zfill(40), {"rpm": 0}, "102".zfill(40), {"rpm": 3000})
    assert totals(update, {source: everything}) == ({}, 0)


def test_the_same_record_twice_in_a_batch_counts_once() -> None:
    raw = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, sequence="100")
    record = parse_record(raw)
    change = decode_change(record, CONFIG)
    assert change is not None
    (hourly, _daily) = plan_snapshots([(record, change), (record, change)], CONFIG)
    assert totals(hourly) == ({"rpm": 1}, 1)


def test_shards_of_one_bucket_feed_the_same_snapshot_as_separate_sources() -> None:
    raws = [bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, shard=shard) for shard in (0, 1)]
    pairs = [(r, decode_change(r, CONFIG)) for r in map(parse_record, raws)]
    hourly = plan_snapshots([(r, c) for r, c in pairs if c], CONFIG)[0]
    assert len(hourly.by_source) == 2
    assert totals(hourly) == ({"rpm": 2}, 2)


def test_numbers_in_the_image_other_than_counters_do_not_matter() -> None:
    raw = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, extra={"shard_count": n(4)})
    assert set(decode(raw).millis) == {"rpm"}


def reference_plan(pairs: Sequence[tuple[Any, Any]], config: AggregatorConfig) -> dict[Any, Any]:
    """The grouping spelled out: per snapshot item and source, contributions in order."""
    items: dict[Any, dict[str, list[tuple[str, dict[str, int]]]]] = {}
    for record, change in pairs:
        for window in config.snapshot_windows:
            key = (change.namespace, change.entity, change.resource, window,
                   window_key(record.created_ms, window))
            items.setdefault(key, {}).setdefault(change.source_key, []).append(
                (record.position, whole_tokens(change.millis, config.counter_scale)))
    return items


@given(st.lists(st.tuples(st.sampled_from(["user-1", "user-2"]), st.sampled_from([0, 1]),
                          st.integers(0, 3 * 86_400), st.integers(1, 2_500)),
                min_size=1, max_size=30))
def test_every_record_lands_in_its_own_windows_in_stream_order(
    steps: Sequence[tuple[str, int, int, int]]
) -> None:
    # Sources cross hour and day boundaries and come back: the planner's per-hour
    # shortcut must still put each record in exactly the items its own time names.
    config = AggregatorConfig(snapshot_windows=(Window.HOURLY, Window.DAILY, Window.MONTHLY))
    totals: dict[tuple[str, int], int] = {}
    raws = []
    for i, (entity, shard, offset, amount) in enumerate(steps):
        before = totals.get((entity, shard), 0)
        totals[entity, shard] = before + amount
        raws.append(bucket_record("MODIFY", {"rpm": before}, {"rpm": before + amount},
                                  entity=entity, shard=shard, created=1_704_060_000 + offset,
                                  sequence=str(1000 + i)))
    pairs = [(r, c) for r in map(parse_record, raws) if (c := decode_change(r, config))]
    planned = {u.key: {source: [(c.position, dict(c.counters)) for c in contributions]
                       for source, contributions in u.by_source.items()}
               for u in plan_snapshots(pairs, config)}
    assert planned == reference_plan(pairs, config)
