"""Exact requests the adapters send, pinned with botocore's Stubber."""

import logging
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from aggregator.config import AggregatorConfig
from aggregator.processor import decode_change, plan_snapshots
from aggregator.refill import RefillPlan
from aggregator.stores import BucketStore, SnapshotStore, watermark_attribute
from streamagg_engine.errors import StoreError
from streamagg_engine.records import parse_record
from streamagg_engine.windows import Window
from tests.factories import NS, bucket_record

CONFIG = AggregatorConfig(table_name="usage", snapshot_windows=(Window.HOURLY,))


def client() -> Any:
    return boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def one_update(sequences: list[str]) -> Any:
    raws = [bucket_record("MODIFY", {"rpm": i * 1000, "tpm": 0},
                          {"rpm": (i + 1) * 1000, "tpm": 250_000}, sequence=seq)
            for i, seq in enumerate(sequences)]
    pairs = [(r, decode_change(r, CONFIG)) for r in map(parse_record, raws)]
    (update,) = plan_snapshots([(r, c) for r, c in pairs if c], CONFIG)
    return update


SOURCE = f"{NS}/BUCKET#user-1#gpt-4#0|#STATE"


def test_one_update_item_sets_keys_and_ttl_once_and_adds_every_counter() -> None:
    ddb = client()
    with Stubber(ddb) as stub:
        stub.add_response("update_item", {}, {
            "TableName": "usage",
            "Key": {"PK": {"S": f"{NS}/ENTITY#user-1"},
                    "SK": {"S": "#USAGE#gpt-4#2023-11-14T22:00:00Z#hourly"}},
            "UpdateExpression": (
                "SET #entity = :entity, #resource = :resource, #window = :window, "
                "#start = :start, #g2pk = :g2pk, #g2sk = :g2sk, #g4pk = :g4pk, #g4sk = :g4sk, "
                "#ttl = if_not_exists(#ttl, :ttl), #w0 = :w0 "
                "ADD #events :events, #c0 :c0, #c1 :c1"),
            "ConditionExpression": "(attribute_not_exists(#w0) OR #w0 < :f0)",
            "ExpressionAttributeNames": {
                "#entity": "entity_id", "#resource": "resource", "#window": "window",
                "#start": "window_start", "#events": "total_events", "#g2pk": "GSI2PK",
                "#g2sk": "GSI2SK", "#g4pk": "GSI4PK", "#g4sk": "GSI4SK", "#ttl": "ttl",
                "#c0": "rpm", "#c1": "tpm", "#w0": watermark_attribute(SOURCE)},
            "ExpressionAttributeValues": {
                ":entity": {"S": "user-1"}, ":resource": {"S": "gpt-4"},
                ":window": {"S": "hourly"}, ":start": {"S": "2023-11-14T22:00:00Z"},
                ":events": {"N": "2"}, ":g2pk": {"S": f"{NS}/RESOURCE#gpt-4"},
                ":g2sk": {"S": "USAGE#2023-11-14T22:00:00Z#user-1"},
                ":g4pk": {"S": NS}, ":g4sk": {"S": f"{NS}/ENTITY#user-1"},
                ":ttl": {"N": str(1_699_999_200 + 3600 + 90 * 86_400)},
                ":c0": {"N": "2"}, ":c1": {"N": "500"},
                ":w0": {"S": "12".zfill(40)}, ":f0": {"S": "11".zfill(40)}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        })
        assert SnapshotStore(ddb, CONFIG).apply(one_update(["11", "12"])) == 0
        stub.assert_no_pending_responses()


def test_a_redelivery_adds_only_the_records_newer_than_the_stored_watermark() -> None:
    ddb = client()
    stored = {watermark_attribute(SOURCE): {"S": "11".zfill(40)}}
    with Stubber(ddb) as stub:
        stub.add_client_error("update_item", "ConditionalCheckFailedException",
                              modeled_fields={"Item": stored})
        stub.add_response("update_item", {}, {
            "TableName": ANY, "Key": ANY, "UpdateExpression": ANY,
            "ConditionExpression": "(attribute_not_exists(#w0) OR #w0 < :f0)",
            "ExpressionAttributeNames": ANY, "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            "ExpressionAttributeValues": {
                **{k: ANY for k in (":entity", ":resource", ":window", ":start", ":g2pk",
                                    ":g2sk", ":g4pk", ":g4sk", ":ttl", ":c1")},
                ":events": {"N": "1"}, ":c0": {"N": "1"},
                ":w0": {"S": "12".zfill(40)}, ":f0": {"S": "12".zfill(40)}},
        })
        assert SnapshotStore(ddb, CONFIG).apply(one_update(["11", "12"])) == 1
        stub.assert_no_pending_responses()


def test_a_write_that_already_landed_is_not_applied_twice() -> None:
    ddb = client()
    stored = {watermark_attribute(SOURCE): {"S": "12".zfill(40)}}
    with Stubber(ddb) as stub:
        stub.add_client_error("update_item", "ConditionalCheckFailedException",
                              modeled_fields={"Item": stored})
        assert SnapshotStore(ddb, CONFIG).apply(one_update(["11", "12"])) == 2
        stub.assert_no_pending_responses()


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


PLAN = RefillPlan(pk="ns/BUCKET#u#r#0", sk="#STATE", expected_refilled_at=1000,
                  refilled_at=61_000, deltas={"rpm": 100, "tpm": 5000},
                  read_tokens={"rpm": 0, "tpm": -20})


def test_a_refill_is_one_update_for_all_limits_locked_on_rf() -> None:
    ddb = client()
    with Stubber(ddb) as stub:
        stub.add_response("update_item", {}, {
            "TableName": "usage",
            "Key": {"PK": {"S": "ns/BUCKET#u#r#0"}, "SK": {"S": "#STATE"}},
            "UpdateExpression": "SET #rf = :rf ADD #t0 :d0, #t1 :d1",
            "ConditionExpression": "#rf = :expected AND #t0 <= :r0 AND #t1 <= :r1",
            "ExpressionAttributeNames": {"#rf": "rf", "#t0": "b_rpm_tk", "#t1": "b_tpm_tk"},
            "ExpressionAttributeValues": {
                ":rf": {"N": "61000"}, ":expected": {"N": "1000"}, ":d0": {"N": "100"},
                ":d1": {"N": "5000"}, ":r0": {"N": "0"}, ":r1": {"N": "-20"}},
        })
        assert BucketStore(ddb, "usage").refill(PLAN) is True


def test_a_lost_rf_race_is_logged_at_debug_and_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ddb = client()
    caplog.set_level(logging.DEBUG, logger="aggregator")
    with Stubber(ddb) as stub:
        stub.add_client_error("update_item", "ConditionalCheckFailedException")
        assert BucketStore(ddb, "usage").refill(PLAN) is False
    (entry,) = [r for r in caplog.records if "rf race" in r.getMessage()]
    assert entry.levelno == logging.DEBUG
