"""Ports of zae-limiter 0.17's ``unit/test_processor.py``, snapshot side, to our handler.

Each upstream test feeds a record to an internal function (``extract_deltas``,
``update_snapshot``, ``get_window_key``...) and inspects its return value or the mocked
``update_item`` call. Here the same record goes through our Lambda entry point onto a
zae-limiter table on moto, and what the test checked is read back with zae-limiter's own
reader (or the stored item, for attributes the reader does not return).

Upstream tests NOT ported, and why:

* the refill side (the bucket maintenance ports cover it):
  TestProcessStreamRecords::test_refills_written_in_result,
  ::test_refill_error_captured_in_errors;
  TestNamespaceExtraction::test_aggregate_bucket_states_propagates_namespace_id,
  ::test_try_refill_bucket_uses_namespaced_key,
  ::test_pre_migration_records_skipped_in_aggregate;
  TestNewBucketPKParsing::test_parse_bucket_record_reads_gc,
  ::test_parse_bucket_record_missing_gc_is_none, ::test_aggregate_bucket_states_keys_by_shard,
  ::test_try_refill_bucket_new_pk_and_effective_limits, ::test_try_refill_bucket_old_pk_shard_0.
* TestUpdateSnapshot::test_update_expression_structure: it pins upstream's UpdateExpression
  text; ours is one request per item per batch with counted ranges (``stores.py``), so
  what is ported is the item that expression leaves (see the other TestUpdateSnapshot ports).

Deviations asserted on purpose (each docstring says why): INSERT counted, windows from the
record's stream time, fractions telescoped (never floored per record), the window in the
sort key, the TTL from the window's end, bad records skipped by name.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from aggregator.config import AggregatorConfig
from streamagg_engine.errors import ConfigError
from streamagg_engine.windows import Window
from tests.zae_upstream import support
from tests.zae_upstream.support import RF_MS, Zae, logged, n, s, stream_record

zae_moto, zae_table, zae = support.zae_moto, support.zae_table, support.zae


def upstream_record(zae: Zae, *, sk: str = "#BUCKET#gpt-4", entity: str = "entity-1",
                    rf: int = RF_MS, limits: dict[str, tuple[int | None, int | None]] | None = None,
                    namespace: str | None = None, pk: str | None = None) -> dict[str, Any]:
    """Upstream's ``TestExtractDeltas._make_record``: a pre-0.9 bucket (no ``resource``)."""
    ns = zae.ns if namespace is None else namespace
    key = {"PK": s(pk or f"{ns}/ENTITY#{entity}"), "SK": s(sk)}
    new: dict[str, Any] = {**key, "entity_id": s(entity), "rf": n(rf)}
    old: dict[str, Any] = {**key, "entity_id": s(entity), "rf": n(rf - 1000)}
    moves = limits if limits is not None else {"tpm": (0, 5_000_000)}
    for name, (old_tc, new_tc) in moves.items():
        if new_tc is not None:
            new[f"b_{name}_tc"] = n(new_tc)
        if old_tc is not None:
            old[f"b_{name}_tc"] = n(old_tc)
    return stream_record(old, new, created_ms=rf)


def counters(zae: Zae, entity: str = "entity-1", window: str = "hourly") -> list[dict[str, int]]:
    return [snap.counters for snap in zae.snapshots(entity, window=window)]


def ok(response: dict[str, Any]) -> None:
    assert response == {"batchItemFailures": []}


# TestConsumptionDelta

def test_dataclass_fields(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestConsumptionDelta::test_dataclass_fields.

    As behaviour: a delta's namespace, entity, resource, limit and tokens are the
    snapshot's."""
    ok(zae.invoke_handler([upstream_record(zae, entity="e1", limits={"rpm": (0, 10_000)})]))
    (snap,) = zae.snapshots("e1", window="hourly")
    assert (snap.entity_id, snap.resource, snap.counters) == ("e1", "gpt-4", {"rpm": 10})


# TestExtractDeltas

def test_valid_bucket_record_consumption(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestExtractDeltas::test_valid_bucket_record_consumption."""
    ok(zae.invoke_handler([upstream_record(zae, entity="test-entity")]))
    (snap,) = zae.snapshots("test-entity", window="hourly")
    assert (snap.resource, snap.counters, snap.window_start) == \
        ("gpt-4", {"tpm": 5000}, "2024-01-01T00:00:00Z")


def test_valid_bucket_record_refund(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestExtractDeltas::test_valid_bucket_record_refund."""
    ok(zae.invoke_handler([upstream_record(zae, limits={"tpm": (10_000_000, 5_000_000)})]))
    assert counters(zae) == [{"tpm": -5000}]


def test_multiple_limits_from_single_record(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestExtractDeltas::test_multiple_limits_from_single_record.

    Two limits moved: two events, as upstream's two deltas count."""
    ok(zae.invoke_handler([upstream_record(
        zae, entity="multi-limit", limits={"tpm": (0, 5_000_000), "rpm": (0, 1000)})]))
    (snap,) = zae.snapshots("multi-limit", window="hourly")
    assert (snap.counters, snap.total_events) == ({"tpm": 5000, "rpm": 1}, 2)


@pytest.mark.parametrize("sk", ["#LIMIT#gpt-4#tpm", "#META", "#RESOURCE#gpt-4"])
def test_non_bucket_record_returns_empty(zae: Zae, sk: str) -> None:
    """Upstream: unit/test_processor.py::TestExtractDeltas::test_non_bucket_record_returns_empty."""
    ok(zae.invoke_handler([upstream_record(zae, sk=sk)]))
    assert zae.usage_items() == []


def test_zero_delta_returns_empty(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestExtractDeltas::test_zero_delta_returns_empty."""
    ok(zae.invoke_handler([upstream_record(zae, limits={"tpm": (1_000_000, 1_000_000)})]))
    assert zae.usage_items() == []


def test_empty_resource_returns_empty(zae: Zae, capsys: pytest.CaptureFixture[str]) -> None:
    """Upstream: unit/test_processor.py::TestExtractDeltas::test_empty_resource_returns_empty.

    Deviation: skipped by name (logged, counted in RecordsSkipped), not silently."""
    ok(zae.invoke_handler([upstream_record(zae, sk="#BUCKET#")]))
    assert zae.usage_items() == []
    assert [line["reason"] for line in logged(capsys, "skipped malformed record")] == \
        ["missing resource"]


def test_missing_counter_returns_empty(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestExtractDeltas::test_missing_counter_returns_empty."""
    ok(zae.invoke_handler([upstream_record(zae, limits={})]))
    assert zae.usage_items() == []


def test_partial_counter_returns_empty(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestExtractDeltas::test_partial_counter_returns_empty."""
    ok(zae.invoke_handler([upstream_record(zae, limits={"tpm": (None, 1_000_000)}),
                           upstream_record(zae, limits={"tpm": (1_000_000, None)})]))
    assert zae.usage_items() == []


@pytest.mark.parametrize("entity_id", [None, ""], ids=["missing", "empty"])
def test_missing_entity_id_returns_empty(zae: Zae, entity_id: str | None,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Upstream: unit/test_processor.py::TestExtractDeltas::test_missing_entity_id_returns_empty
    and ::test_empty_entity_id_returns_empty.

    Deviation: skipped by name (logged, counted), not silently."""
    record = upstream_record(zae)
    if entity_id is None:
        del record["dynamodb"]["NewImage"]["entity_id"]
    else:
        record["dynamodb"]["NewImage"]["entity_id"] = s(entity_id)
    ok(zae.invoke_handler([record]))
    assert zae.usage_items() == []
    assert [line["reason"] for line in logged(capsys, "skipped malformed record")] == \
        ["missing entity_id"]


@pytest.mark.parametrize("drop", ["dynamodb", "NewImage"])
def test_missing_dynamodb_key(zae: Zae, drop: str) -> None:
    """Upstream: unit/test_processor.py::TestExtractDeltas::test_missing_dynamodb_key
    and ::test_missing_new_image.

    Deviation: skipped by name; the batch still succeeds and the next record is counted."""
    broken = upstream_record(zae, entity="broken")
    if drop == "dynamodb":
        del broken["dynamodb"]
    else:
        del broken["dynamodb"]["NewImage"]
    ok(zae.invoke_handler([broken, upstream_record(zae)]))
    assert counters(zae) == [{"tpm": 5000}]
    assert zae.snapshots("broken") == []


# TestGetWindowKey

@pytest.mark.parametrize(("timestamp_ms", "window", "expected"), [
    (1_705_329_045_000, "hourly", "2024-01-15T14:00:00Z"),  # test_hourly_window
    (1_705_329_045_000, "daily", "2024-01-15T00:00:00Z"),  # test_daily_window
    (1_705_329_045_000, "monthly", "2024-01-01T00:00:00Z"),  # test_monthly_window
    (1_705_276_800_000, "hourly", "2024-01-15T00:00:00Z"),  # test_midnight_boundary
    (1_705_363_199_000, "daily", "2024-01-15T00:00:00Z"),  # test_end_of_day
    (1_704_067_199_000, "monthly", "2023-12-01T00:00:00Z"),  # test_year_boundary
])
def test_get_window_key(zae: Zae, timestamp_ms: int, window: str, expected: str) -> None:
    """Upstream: unit/test_processor.py::TestGetWindowKey::test_hourly_window, ::test_daily_window,
    ::test_monthly_window, ::test_midnight_boundary, ::test_end_of_day, ::test_year_boundary.

    As behaviour: the snapshot's ``window_start``. (We place a record by its stream time,
    upstream by the bucket's ``rf``; here both are the same instant.)"""
    record = upstream_record(zae, rf=timestamp_ms)
    ok(zae.invoke_handler([record], snapshot_windows=(Window(window),)))
    (snap,) = zae.snapshots("entity-1", window=window)
    assert snap.window_start == expected


def test_unknown_window_raises(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestGetWindowKey::test_unknown_window_raises.

    Deviation: refused when the configuration is built (at synth), never per record."""
    with pytest.raises(ConfigError, match="weekly"):
        AggregatorConfig.from_env({**zae.config.to_env(), "SNAPSHOT_WINDOWS": "hourly,weekly"})


# TestGetWindowEnd and TestCalculateSnapshotTtl

@pytest.mark.parametrize(("timestamp_ms", "window", "end"), [
    (1_705_329_045_000, "hourly", "2024-01-15T15:00:00Z"),  # test_hourly_window_end
    (1_705_329_045_000, "daily", "2024-01-16T00:00:00Z"),  # test_daily_window_end
    (1_705_329_045_000, "monthly", "2024-02-01T00:00:00Z"),  # ..._monthly_window_end_regular
    (1_734_000_000_000, "monthly", "2025-01-01T00:00:00Z"),  # ..._december_year_rollover
])
def test_get_window_end(zae: Zae, timestamp_ms: int, window: str, end: str) -> None:
    """Upstream: unit/test_processor.py::TestGetWindowEnd::test_hourly_window_end,
    ::test_daily_window_end, ::test_monthly_window_end_regular,
    ::test_monthly_window_december_year_rollover.

    As behaviour: the reader's ``window_end`` (its last second). Deviation: our TTL
    counts from the window's end (upstream's from the write's clock, so there a late
    record's snapshot outlives its neighbours)."""
    ok(zae.invoke_handler([upstream_record(zae, rf=timestamp_ms)],
                          snapshot_windows=(Window(window),)))
    (snap,) = zae.snapshots("entity-1", window=window)
    end_s = int(datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp())
    assert snap.window_end == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end_s - 1))
    (item,) = zae.usage_items()
    assert int(item["ttl"]["N"]) == end_s + 90 * 86_400


def test_unknown_window_returns_same() -> None:
    """Upstream: unit/test_processor.py::TestGetWindowEnd::test_unknown_window_returns_same.

    Deviation: an unknown window never reaches a snapshot (refused by the configuration,
    see test_unknown_window_raises), so there is no end to compute."""
    with pytest.raises(ValueError, match="quarterly"):
        Window("quarterly")


@pytest.mark.parametrize("days", [30, 90, 365])
def test_calculate_snapshot_ttl(zae: Zae, days: int) -> None:
    """Upstream: unit/test_processor.py::TestCalculateSnapshotTtl::test_returns_future_timestamp
    and ::test_different_ttl_days.

    Deviation: window end + days (see test_get_window_end)."""
    ok(zae.invoke_handler([upstream_record(zae, rf=1_705_329_045_000)],
                          snapshot_windows=(Window.HOURLY,), snapshot_ttl_days=days))
    (item,) = zae.usage_items()
    assert int(item["ttl"]["N"]) == 1_705_330_800 + days * 86_400


# TestUpdateSnapshot: the item upstream's update_item call leaves, read back

def test_calls_update_item_with_correct_keys(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestUpdateSnapshot::test_calls_update_item_with_correct_keys.

    Deviation: the sort key ends in ``#{window}`` so an hour and its day never share an
    item (upstream's ``#USAGE#{resource}#{window_key}`` adds them together)."""  # noqa: E501
    ok(zae.invoke_handler([upstream_record(zae, rf=1_705_329_045_000)],
                          snapshot_windows=(Window.HOURLY,)))
    (item,) = zae.usage_items()
    assert (item["PK"]["S"], item["SK"]["S"]) == \
        (f"{zae.ns}/ENTITY#entity-1", "#USAGE#gpt-4#2024-01-15T14:00:00Z#hourly")


def test_converts_millitokens_to_tokens(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestUpdateSnapshot::test_converts_millitokens_to_tokens.

    Deviation: whole tokens by the floor of the cumulative counter, so fractions add up
    across records (upstream floors each record's delta: 3 x 1,500 millitokens is 3 there,
    4 here)."""
    records = [upstream_record(zae, limits={"tpm": (i * 1500, (i + 1) * 1500)}) for i in range(3)]
    ok(zae.invoke_handler(records))
    assert counters(zae) == [{"tpm": 4}]


def test_sets_gsi2_keys(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestUpdateSnapshot::test_sets_gsi2_keys."""
    ok(zae.invoke_handler([upstream_record(zae, rf=1_705_329_045_000)],
                          snapshot_windows=(Window.HOURLY,)))
    (item,) = zae.usage_items()
    assert (item["GSI2PK"]["S"], item["GSI2SK"]["S"]) == \
        (f"{zae.ns}/RESOURCE#gpt-4", "USAGE#2024-01-15T14:00:00Z#entity-1")
    assert (item["GSI4PK"]["S"], item["GSI4SK"]["S"]) == (zae.ns, f"{zae.ns}/ENTITY#entity-1")


def test_sets_ttl(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestUpdateSnapshot::test_sets_ttl.

    Deviation: set once, from the window's end (see test_get_window_end)."""
    record = upstream_record(zae, rf=1_705_329_045_000)
    ok(zae.invoke_handler([record], snapshot_windows=(Window.HOURLY,)))
    later = upstream_record(zae, rf=1_705_329_045_000 + 60_000,
                            limits={"tpm": (5_000_000, 6_000_000)})
    ok(zae.invoke_handler([later], snapshot_windows=(Window.HOURLY,), snapshot_ttl_days=1))
    (item,) = zae.usage_items()
    assert int(item["ttl"]["N"]) == 1_705_330_800 + 90 * 86_400


def test_expression_attribute_values_and_names(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestUpdateSnapshot::test_expression_attribute_values
    and ::test_expression_attribute_names.

    As behaviour: the attributes those values and names set, and nothing else the
    reader would count as a limit (our counted ranges are strings)."""
    ok(zae.invoke_handler([upstream_record(zae, rf=1_705_329_045_000)],
                          snapshot_windows=(Window.HOURLY,)))
    (item,) = zae.usage_items()
    assert {k: v for k, v in item.items() if "N" in v} == \
        {"tpm": n(5000), "total_events": n(1), "ttl": item["ttl"]}
    assert (item["entity_id"], item["resource"], item["window"], item["window_start"]) == \
        (s("entity-1"), s("gpt-4"), s("hourly"), s("2024-01-15T14:00:00Z"))


# TestProcessStreamRecords

def test_empty_records(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestProcessStreamRecords::test_empty_records."""
    ok(zae.invoke_handler([]))
    assert zae.usage_items() == []


def test_filters_non_modify_events(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestProcessStreamRecords::test_filters_non_modify_events.

    Deviation: an INSERT is counted from zero (zae-limiter's first acquire creates the
    bucket with its consumption already in ``tc``; upstream loses it). A REMOVE counts
    nothing, as upstream."""
    modify = upstream_record(zae)
    insert = stream_record(None, modify["dynamodb"]["NewImage"], "INSERT")
    remove = stream_record(modify["dynamodb"]["NewImage"], None, "REMOVE")
    ok(zae.invoke_handler([insert]))
    assert counters(zae) == [{"tpm": 5000}]
    ok(zae.invoke_handler([remove]))
    assert counters(zae) == [{"tpm": 5000}]


def test_processes_valid_modify_events(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestProcessStreamRecords::test_processes_valid_modify_events."""  # noqa: E501
    ok(zae.invoke_handler([upstream_record(zae)]))
    assert counters(zae) == [{"tpm": 5000}]


def test_multiple_windows(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestProcessStreamRecords::test_multiple_windows."""
    windows = (Window.HOURLY, Window.DAILY, Window.MONTHLY)
    ok(zae.invoke_handler([upstream_record(zae)], snapshot_windows=windows))
    assert sorted(snap.window_type for snap in zae.snapshots("entity-1")) == \
        ["daily", "hourly", "monthly"]


def test_handles_extract_deltas_exception(zae: Zae, capsys: pytest.CaptureFixture[str]) -> None:
    """Upstream: unit/test_processor.py::TestProcessStreamRecords::test_handles_extract_deltas_exception
    and ::test_mixed_valid_and_invalid_records.

    A record that cannot be read is skipped by name; the others are counted."""  # noqa: E501
    broken = upstream_record(zae, entity="broken")
    broken["dynamodb"]["NewImage"]["b_tpm_tc"] = n("1.5")
    ok(zae.invoke_handler([upstream_record(zae), broken]))
    assert counters(zae) == [{"tpm": 5000}]
    (skipped,) = logged(capsys, "skipped malformed record")
    assert "b_tpm_tc' is not a whole DynamoDB number" in skipped["reason"]


def test_handles_update_snapshot_exception(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestProcessStreamRecords::test_handles_update_snapshot_exception.

    Deviation: upstream logs the failed write and drops its deltas; ours reports the
    record in ``batchItemFailures``, so Lambda retries it (and the DLQ keeps it)."""  # noqa: E501
    record = upstream_record(zae)
    response = zae.invoke_handler([record], snapshot_table_name="no-such-table")
    assert response == {"batchItemFailures": [
        {"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}


def test_skips_zero_delta_records(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestProcessStreamRecords::test_skips_zero_delta_records."""
    ok(zae.invoke_handler([upstream_record(zae, limits={"tpm": (5_000_000, 5_000_000)})]))
    assert zae.usage_items() == []


# TestNamespaceExtraction (snapshot side)

def test_extract_namespace_from_pk(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestNamespaceExtraction::test_extract_namespace_from_pk,
    ::test_extract_deltas_propagates_namespace_id and ::test_update_snapshot_uses_namespaced_keys.
    """
    ok(zae.invoke_handler([upstream_record(zae, entity="user-123")],
                          snapshot_windows=(Window.HOURLY,)))
    (item,) = zae.usage_items()
    assert (item["PK"]["S"], item["GSI2PK"]["S"]) == \
        (f"{zae.ns}/ENTITY#user-123", f"{zae.ns}/RESOURCE#gpt-4")


def test_pre_migration_record_returns_none(zae: Zae, capsys: pytest.CaptureFixture[str]) -> None:
    """Upstream: unit/test_processor.py::TestNamespaceExtraction::test_pre_migration_record_returns_none
    and ::test_pre_migration_records_skipped_in_extract_deltas.

    Skipped with a warning naming why, as upstream (ours also counts it in RecordsSkipped)."""  # noqa: E501
    ok(zae.invoke_handler([upstream_record(zae, pk="ENTITY#user-123")]))
    assert zae.usage_items() == []
    (skipped,) = logged(capsys, "skipped malformed record")
    assert "pre-0.7" in skipped["reason"]


def test_cross_namespace_aggregation_independence(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestNamespaceExtraction::test_cross_namespace_aggregation_independence."""  # noqa: E501
    ok(zae.invoke_handler([
        upstream_record(zae, entity="user-1", limits={"tpm": (0, 3_000_000)}),
        upstream_record(zae, entity="user-1", namespace="ns2", limits={"tpm": (0, 7_000_000)}),
    ], snapshot_windows=(Window.HOURLY,)))
    assert counters(zae, "user-1") == [{"tpm": 3000}]
    other = zae.item("ns2/ENTITY#user-1", "#USAGE#gpt-4#2024-01-01T00:00:00Z#hourly")
    assert other is not None
    assert other["tpm"] == n(7000)


# TestNewBucketPKParsing (snapshot side)

def new_pk_record(zae: Zae, *, shard: int = 0, shard_count: int = 1,
                  limits: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    moves = limits or {"tpm": (0, 5_000_000)}
    old = support.bucket_image(zae.ns, "entity-1", "gpt-4", {k: a for k, (a, _) in moves.items()},
                               shard=shard, shard_count=shard_count, resource_attribute=False)
    new = support.bucket_image(zae.ns, "entity-1", "gpt-4", {k: b for k, (_, b) in moves.items()},
                               shard=shard, shard_count=shard_count, resource_attribute=False)
    return stream_record(old, new)


def test_parse_bucket_record_new_pk(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestNewBucketPKParsing::test_parse_bucket_record_new_pk.

    The resource comes from the key (the image carries no ``resource``), as upstream."""
    ok(zae.invoke_handler([new_pk_record(zae)]))
    (snap,) = zae.snapshots("entity-1", window="hourly")
    assert (snap.resource, snap.counters) == ("gpt-4", {"tpm": 5000})


def test_parse_bucket_record_new_pk_with_shards(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestNewBucketPKParsing::test_parse_bucket_record_new_pk_with_shards.

    Every shard of a bucket feeds the same snapshot."""  # noqa: E501
    ok(zae.invoke_handler([new_pk_record(zae, shard=shard, shard_count=4) for shard in (0, 3)]))
    (snap,) = zae.snapshots("entity-1", window="hourly")
    assert (snap.counters, snap.total_events) == ({"tpm": 10_000}, 2)


def test_parse_bucket_record_old_pk_still_works(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestNewBucketPKParsing::test_parse_bucket_record_old_pk_still_works.

    A pre-0.9 bucket (``{ns}/ENTITY#{entity}``, ``#BUCKET#{resource}``) beside a 0.9 one
    of the same entity and resource (a table mid-migration): both counted, one snapshot."""  # noqa: E501
    ok(zae.invoke_handler([upstream_record(zae), new_pk_record(zae)]))
    assert counters(zae) == [{"tpm": 10_000}]


def test_extract_deltas_filters_wcu(zae: Zae) -> None:
    """Upstream: unit/test_processor.py::TestNewBucketPKParsing::test_extract_deltas_filters_wcu."""
    ok(zae.invoke_handler([new_pk_record(zae, limits={"tpm": (0, 5_000_000),
                                                      "wcu": (0, 1000)})]))
    (snap,) = zae.snapshots("entity-1", window="hourly")
    assert (snap.counters, snap.total_events) == ({"tpm": 5000}, 1)
