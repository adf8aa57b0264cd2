"""Exact requests the adapters send, pinned with botocore's Stubber."""

import logging
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from aggregator.config import AggregatorConfig
from aggregator.maintenance import BucketMaintenance, NativeTable, bucket_states
from aggregator.processor import decode_change, plan_snapshots
from aggregator.stores import SnapshotStore, range_attributes
from streamagg_engine.errors import StoreError
from streamagg_engine.records import parse_record
from streamagg_engine.windows import Window
from tests.factories import NS, bucket_record

CONFIG = AggregatorConfig(table_name="usage", snapshot_windows=(Window.HOURLY,))


def client() -> Any:
    return boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def one_update(sequences: list[str], start: int = 0) -> Any:
    """One bucket's records, each taking 1 rpm and 250 tpm tokens, the ``start``-th first."""
    raws = [bucket_record("MODIFY", {"rpm": i * 1000, "tpm": i * 250_000},
                          {"rpm": (i + 1) * 1000, "tpm": (i + 1) * 250_000}, sequence=seq)
            for i, seq in enumerate(sequences, start)]
    pairs = [(r, decode_change(r, CONFIG)) for r in map(parse_record, raws)]
    (update,) = plan_snapshots([(r, c) for r, c in pairs if c], CONFIG)
    return update


SOURCE = f"{NS}/BUCKET#user-1#gpt-4#0|#STATE"


def test_one_update_item_sets_keys_and_ttl_once_and_adds_every_counter() -> None:
    ddb = client()
    mark, last, first, _ = range_attributes(SOURCE)
    with Stubber(ddb) as stub:
        stub.add_response("update_item", {}, {
            "TableName": "usage",
            "Key": {"PK": {"S": f"{NS}/ENTITY#user-1"},
                    "SK": {"S": "#USAGE#gpt-4#2023-11-14T22:00:00Z#hourly"}},
            "UpdateExpression": (
                "SET #entity = :entity, #resource = :resource, #window = :window, "
                "#start = :start, #g2pk = :g2pk, #g2sk = :g2sk, #g4pk = :g4pk, #g4sk = :g4sk, "
                "#ttl = if_not_exists(#ttl, :ttl), #w0 = :w0, #n0 = :n0, "
                "#a0 = if_not_exists(#a0, :a0) "
                "ADD #events :events, #c0 :c0, #c1 :c1"),
            "ConditionExpression":
                "(attribute_not_exists(#w0) OR (#w0 < :f0 AND #n0 = :o0))",
            "ExpressionAttributeNames": {
                "#entity": "entity_id", "#resource": "resource", "#window": "window",
                "#start": "window_start", "#events": "total_events", "#g2pk": "GSI2PK",
                "#g2sk": "GSI2SK", "#g4pk": "GSI4PK", "#g4sk": "GSI4SK", "#ttl": "ttl",
                "#c0": "rpm", "#c1": "tpm", "#w0": mark, "#n0": last, "#a0": first},
            "ExpressionAttributeValues": {
                ":entity": {"S": "user-1"}, ":resource": {"S": "gpt-4"},
                ":window": {"S": "hourly"}, ":start": {"S": "2023-11-14T22:00:00Z"},
                ":events": {"N": "4"}, ":g2pk": {"S": f"{NS}/RESOURCE#gpt-4"},
                ":g2sk": {"S": "USAGE#2023-11-14T22:00:00Z#user-1"},
                ":g4pk": {"S": NS}, ":g4sk": {"S": f"{NS}/ENTITY#user-1"},
                ":ttl": {"N": str(1_699_999_200 + 3600 + 90 * 86_400)},
                ":c0": {"N": "2"}, ":c1": {"N": "500"},
                ":w0": {"S": "12".zfill(40)}, ":f0": {"S": "11".zfill(40)},
                ":n0": {"S": "rpm=2000,tpm=500000"}, ":o0": {"S": "rpm=0,tpm=0"},
                ":a0": {"S": "11".zfill(40) + " rpm=0,tpm=0"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        })
        applied = SnapshotStore(ddb, CONFIG).apply(one_update(["11", "12"]))
        stub.assert_no_pending_responses()
    assert (applied.duplicates, applied.gaps, applied.written) == (0, {}, True)


def stored_range_item(first: str, before: str, last: str, after: str) -> dict[str, Any]:
    mark, last_name, first_name, _ = range_attributes(SOURCE)
    return {mark: {"S": last.zfill(40)}, last_name: {"S": after},
            first_name: {"S": f"{first.zfill(40)} {before}"}}


def exact_write(values: dict[str, Any], condition: str) -> dict[str, Any]:
    if "#g0" in condition:
        values = {":g0": ANY, ":G0": ANY, **values}
    """An update whose condition pins the stored range: only some values matter."""
    counters = (":entity", ":resource", ":window", ":start", ":g2pk", ":g2sk", ":g4pk",
                ":g4sk", ":ttl")
    return {
        "TableName": ANY, "Key": ANY, "UpdateExpression": ANY,
        "ConditionExpression": condition, "ExpressionAttributeNames": ANY,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        "ExpressionAttributeValues": {**{k: ANY for k in counters}, **values},
    }


def test_a_redelivery_adds_only_the_records_the_item_has_not_counted() -> None:
    ddb = client()
    stored = stored_range_item("10", "rpm=0,tpm=0", "11", "rpm=1000,tpm=250000")
    with Stubber(ddb) as stub:
        stub.add_client_error("update_item", "ConditionalCheckFailedException",
                              modeled_fields={"Item": stored})
        stub.add_response("update_item", {}, exact_write({
            ":events": {"N": "2"}, ":c0": {"N": "1"}, ":c1": {"N": "250"},
            ":w0": {"S": "12".zfill(40)}, ":n0": {"S": "rpm=2000,tpm=500000"},
            ":a0": {"S": "10".zfill(40) + " rpm=0,tpm=0"},
            ":W0": {"S": "11".zfill(40)}, ":A0": {"S": "10".zfill(40) + " rpm=0,tpm=0"},
        }, "(#w0 = :W0 AND #a0 = :A0 AND (attribute_not_exists(#g0) OR #g0 = :G0))"))
        applied = SnapshotStore(ddb, CONFIG).apply(one_update(["11", "12"]))
        stub.assert_no_pending_responses()
    assert (applied.duplicates, applied.gaps) == (1, {})


def test_a_write_that_already_landed_is_not_applied_twice() -> None:
    ddb = client()
    stored = stored_range_item("11", "rpm=0,tpm=0", "12", "rpm=2000,tpm=500000")
    with Stubber(ddb) as stub:
        stub.add_client_error("update_item", "ConditionalCheckFailedException",
                              modeled_fields={"Item": stored})
        applied = SnapshotStore(ddb, CONFIG).apply(one_update(["11", "12"]))
        stub.assert_no_pending_responses()
    assert (applied.duplicates, applied.written) == (2, False)


def test_counters_that_moved_between_the_stored_range_and_the_batch_are_a_gap_counted_once(
) -> None:
    """Records 5 to 10 were given up; the bucket's counters say what they consumed."""
    ddb = client()
    stored = stored_range_item("1", "rpm=0,tpm=0", "4", "rpm=-5000,tpm=-250000")
    with Stubber(ddb) as stub:
        stub.add_client_error("update_item", "ConditionalCheckFailedException",
                              modeled_fields={"Item": stored})
        stub.add_response("update_item", {}, exact_write({
            ":events": {"N": "4"}, ":c0": {"N": "7"}, ":c1": {"N": "750"},
            # Remembered, so the given-up records add their events when a redrive brings them.
            ":g0": {"S": f"{'4'.zfill(40)} rpm=-5000,tpm=-250000 {'11'.zfill(40)} rpm=0,tpm=0"},
            ":w0": {"S": "12".zfill(40)}, ":n0": {"S": "rpm=2000,tpm=500000"},
            ":a0": {"S": "1".zfill(40) + " rpm=0,tpm=0"},
            ":W0": {"S": "4".zfill(40)}, ":A0": {"S": "1".zfill(40) + " rpm=0,tpm=0"},
        }, "(#w0 = :W0 AND #a0 = :A0 AND (attribute_not_exists(#g0) OR #g0 = :G0))"))
        applied = SnapshotStore(ddb, CONFIG).apply(one_update(["11", "12"]))
        stub.assert_no_pending_responses()
    assert applied.gaps == {SOURCE: {"rpm": 5, "tpm": 250}}


def test_a_late_replay_below_the_counted_range_is_added_not_taken_for_a_duplicate() -> None:
    """The mapping gave up on 11-12 and went on: 20 counted first; the redrive comes after."""
    ddb = client()
    stored = stored_range_item("20", "rpm=2000,tpm=500000", "20", "rpm=3000,tpm=750000")
    with Stubber(ddb) as stub:
        stub.add_client_error("update_item", "ConditionalCheckFailedException",
                              modeled_fields={"Item": stored})
        stub.add_response("update_item", {}, exact_write({
            ":events": {"N": "4"}, ":c0": {"N": "2"}, ":c1": {"N": "500"},
            ":w0": {"S": "20".zfill(40)}, ":n0": {"S": "rpm=3000,tpm=750000"},
            ":a0": {"S": "11".zfill(40) + " rpm=0,tpm=0"},
            ":W0": {"S": "20".zfill(40)},
            ":A0": {"S": "20".zfill(40) + " rpm=2000,tpm=500000"},
        }, "(#w0 = :W0 AND #a0 = :A0 AND (attribute_not_exists(#g0) OR #g0 = :G0))"))
        applied = SnapshotStore(ddb, CONFIG).apply(one_update(["11", "12"]))
        stub.assert_no_pending_responses()
    assert (applied.duplicates, applied.gaps) == (0, {})


def test_an_item_written_before_ranges_existed_counts_nothing_up_to_its_watermark_twice(
) -> None:
    ddb = client()
    mark, _, _, _ = range_attributes(SOURCE)
    with Stubber(ddb) as stub:
        stub.add_client_error("update_item", "ConditionalCheckFailedException",
                              modeled_fields={"Item": {mark: {"S": "11".zfill(40)}}})
        stub.add_response("update_item", {}, exact_write({
            ":events": {"N": "2"}, ":c0": {"N": "1"}, ":c1": {"N": "250"},
            ":w0": {"S": "12".zfill(40)}, ":n0": {"S": "rpm=2000,tpm=500000"},
            ":a0": {"S": " *"}, ":W0": {"S": "11".zfill(40)},
        }, "(#w0 = :W0 AND attribute_not_exists(#a0) AND "
                   "(attribute_not_exists(#g0) OR #g0 = :G0))"))
        applied = SnapshotStore(ddb, CONFIG).apply(one_update(["11", "12"]))
        stub.assert_no_pending_responses()
    assert applied.duplicates == 1


def test_a_redelivered_tail_this_container_wrote_sends_no_request() -> None:
    ddb = client()
    store = SnapshotStore(ddb, CONFIG)
    with Stubber(ddb) as stub:
        stub.add_response("update_item", {}, exact_write(
            {":events": {"N": "4"}, ":c0": {"N": "2"}, ":c1": {"N": "500"}, ":w0": ANY,
             ":n0": ANY, ":a0": ANY, ":f0": ANY, ":o0": ANY},
            "(attribute_not_exists(#w0) OR (#w0 < :f0 AND #n0 = :o0))"))
        store.apply(one_update(["11", "12"]))
        again = store.apply(one_update(["11", "12"]))
        stub.assert_no_pending_responses()
    assert (again.duplicates, again.written) == (2, False)


def test_the_next_batch_of_a_container_continues_with_one_request() -> None:
    ddb = client()
    store = SnapshotStore(ddb, CONFIG)
    continuing = "(attribute_not_exists(#w0) OR (#w0 < :f0 AND #n0 = :o0))"
    with Stubber(ddb) as stub:
        stub.add_response("update_item", {}, exact_write(
            {":events": {"N": "4"}, ":c0": {"N": "2"}, ":c1": {"N": "500"}, ":w0": ANY,
             ":n0": ANY, ":a0": ANY, ":f0": ANY, ":o0": ANY}, continuing))
        stub.add_response("update_item", {}, exact_write(
            {":events": {"N": "2"}, ":c0": {"N": "1"}, ":c1": {"N": "250"},
             ":w0": {"S": "13".zfill(40)}, ":n0": ANY, ":a0": ANY,
             ":f0": {"S": "13".zfill(40)}, ":o0": {"S": "rpm=2000,tpm=500000"}}, continuing))
        store.apply(one_update(["11", "12"]))
        # A redelivered tail and one new record: only the new one is sent.
        again = store.apply(one_update(["12", "13"], start=1))
        stub.assert_no_pending_responses()
    assert (again.duplicates, again.written) == (1, True)


def test_throttling_after_the_sdk_retries_is_a_retryable_store_error() -> None:
    ddb = client()
    with Stubber(ddb) as stub:
        stub.add_client_error("update_item", "ProvisionedThroughputExceededException")
        with pytest.raises(StoreError) as caught:
            SnapshotStore(ddb, CONFIG).apply(one_update(["11"]))
    assert caught.value.retryable


def test_a_validation_error_is_permanent() -> None:
    ddb = client()
    with Stubber(ddb) as stub:
        stub.add_client_error("update_item", "ValidationException")
        with pytest.raises(StoreError) as caught:
            SnapshotStore(ddb, CONFIG).apply(one_update(["11"]))
    assert not caught.value.retryable


# zae-limiter's maintenance (aggregator.maintenance): upstream's requests, typed on the wire.

NOW = 1_700_000_060_000
BUCKET_PK = f"{NS}/BUCKET#user-1#gpt-4#0"
BUCKET_KEY = {"PK": {"S": BUCKET_PK}, "SK": {"S": "#STATE"}}


def bucket(tk: int, tc: int = 200_000) -> Any:
    """A bucket's state as upstream reads it from one MODIFY (rpm: cp 100,000); the batch
    consumed ``tc``, more than a minute's drip, so a drained bucket needs a refill."""
    (state,) = bucket_states([bucket_record("MODIFY", {"rpm": 0}, {"rpm": tc}, tk={"rpm": tk})])
    return state


def sent(ddb: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` call, as the client receives them."""
    calls: list[dict[str, Any]] = []
    ddb.meta.events.register(f"provide-client-params.dynamodb.{operation}",
                             lambda params, **_: calls.append(params))
    return calls


def test_a_drained_bucket_is_refilled_by_upstreams_update_typed_on_the_wire() -> None:
    ddb = client()
    updates = sent(ddb, "UpdateItem")
    with Stubber(ddb) as stub:
        stub.add_response("update_item", {})
        assert BucketMaintenance(ddb, "usage").refill(bucket(tk=0), NOW) == "written"
    (update,) = updates
    assert (update["TableName"], update["Key"]) == ("usage", BUCKET_KEY)
    values = update["ExpressionAttributeValues"]
    assert all(isinstance(v, dict) and len(v) == 1 for v in values.values())
    assert {"N": "100000"} in values.values()  # 60 s at 100,000 per 60 s, up to the cap
    assert values[":new_rf"] == {"N": str(NOW)}  # rf moves to now ...
    assert values[":expected_rf"] == {"N": "1700000000000"}  # ... locked on the rf read
    assert update["ConditionExpression"].startswith("rf = :expected_rf")


def test_a_refill_refused_by_its_condition_lost_the_race() -> None:
    ddb = client()
    with Stubber(ddb) as stub:
        stub.add_client_error("update_item", "ConditionalCheckFailedException")
        assert BucketMaintenance(ddb, "usage").refill(bucket(tk=0), NOW) == "lost_race"


def test_a_bucket_that_needs_nothing_costs_no_request() -> None:
    ddb = client()
    with Stubber(ddb):  # any request would fail: nothing is queued
        assert BucketMaintenance(ddb, "usage").refill(bucket(tk=100_000, tc=0),
                                                      NOW) == "not_needed"


def test_a_throttled_refill_is_a_retryable_store_error() -> None:
    ddb = client()
    with Stubber(ddb) as stub:
        stub.add_client_error("update_item", "ProvisionedThroughputExceededException")
        with pytest.raises(StoreError) as caught:
            BucketMaintenance(ddb, "usage").refill(bucket(tk=0), NOW)
    assert (caught.value.retryable, caught.value.code) == (
        True, "ProvisionedThroughputExceededException")


def test_an_item_upstream_cannot_handle_is_a_permanent_failure_of_its_own() -> None:
    state = bucket(tk=0)
    state.limits["rpm"].rp_ms = "sixty seconds"  # what no image parse would let through
    with pytest.raises(StoreError) as caught:
        BucketMaintenance(client(), "usage").refill(state, NOW)
    assert (caught.value.retryable, caught.value.code) == (False, "TypeError")


def test_the_table_reads_native_values_back_as_the_boto3_resource_does() -> None:
    ddb = client()
    with Stubber(ddb) as stub:
        stub.add_response("get_item", {"Item": {"shard_count": {"N": "4"}}},
                          {"TableName": "usage", "Key": BUCKET_KEY, "ConsistentRead": True})
        item = NativeTable(ddb, "usage").get_item(
            Key={"PK": BUCKET_PK, "SK": "#STATE"}, ConsistentRead=True)["Item"]
    assert item == {"shard_count": 4}


def test_transactions_go_through_meta_client_with_every_value_typed() -> None:
    ddb = client()
    with Stubber(ddb) as stub:
        stub.add_response("transact_write_items", {}, {"TransactItems": [
            {"Put": {"TableName": "usage", "Item": {**BUCKET_KEY, "shard_count": {"N": "2"}},
                     "ConditionExpression": "attribute_not_exists(PK)"}},
            {"ConditionCheck": {"TableName": "usage", "Key": BUCKET_KEY,
                                "ConditionExpression": "pgen = :g",
                                "ExpressionAttributeValues": {":g": {"N": "3"}}}},
        ]})
        NativeTable(ddb, "usage").meta.client.transact_write_items(TransactItems=[
            {"Put": {"TableName": "usage",
                     "Item": {"PK": BUCKET_PK, "SK": "#STATE", "shard_count": 2},
                     "ConditionExpression": "attribute_not_exists(PK)"}},
            {"ConditionCheck": {"TableName": "usage",
                                "Key": {"PK": BUCKET_PK, "SK": "#STATE"},
                                "ConditionExpression": "pgen = :g",
                                "ExpressionAttributeValues": {":g": 3}}},
        ])


def test_upstreams_log_lines_go_through_ours_at_our_level(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    ddb = client()
    caplog.set_level(logging.INFO, logger="aggregator")
    with Stubber(ddb) as stub:
        stub.add_response("update_item", {})
        BucketMaintenance(ddb, "usage").refill(bucket(tk=0), NOW)
    assert not [r for r in caplog.records if r.getMessage() == "Bucket refilled"]  # DEBUG
    caplog.set_level(logging.DEBUG, logger="aggregator")
    with Stubber(ddb) as stub:
        stub.add_response("update_item", {})
        BucketMaintenance(ddb, "usage").refill(bucket(tk=0), NOW)
    (line,) = [r for r in caplog.records if r.getMessage() == "Bucket refilled"]
    assert (line.name, line.levelno) == ("aggregator.maintenance", logging.DEBUG)
    assert line.entity_id == "user-1"  # type: ignore[attr-defined]
    assert capsys.readouterr().out == ""  # upstream's own logger prints every line
