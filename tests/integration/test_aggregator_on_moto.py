"""The real aggregator on moto's server: stream in, snapshot items and archive objects out."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest

from aggregator import handler as handler_module
from aggregator.config import AggregatorConfig
from aggregator.stores import WATERMARK_PREFIX
from local_aws.event_source_mapping import LocalEventSourceMapping, MappingSettings
from streamagg_engine.windows import Window, window_key
from tests.factories import NS, audit_image, bucket_image, n
from tests.moto_fixtures import LocalAws


def write_bucket_traffic(aws: LocalAws, table: str) -> dict[tuple[str, str], int]:
    """A first acquire (INSERT), more acquires and a refund (MODIFY); the tpm truth."""
    truth: dict[tuple[str, str], int] = {}
    for entity, amounts in {"user-1": [500, 1000, -200], "user-2": [1500, 1]}.items():
        total = 0
        for step, amount in enumerate(amounts):
            total += amount * 1000
            if step == 0:
                item = bucket_image(entity, tc={"tpm": total, "rpm": 1000})
                aws.ddb.put_item(TableName=table, Item=item)
                continue
            aws.ddb.update_item(
                TableName=table,
                Key={"PK": {"S": f"{NS}/BUCKET#{entity}#gpt-4#0"}, "SK": {"S": "#STATE"}},
                UpdateExpression="ADD b_tpm_tc :t, b_tpm_tk :k, b_rpm_tc :one",
                ExpressionAttributeValues={":t": n(amount * 1000), ":k": n(-amount * 1000),
                                           ":one": n(1000 if amount > 0 else 0)})
        truth[(entity, "tpm")] = total // 1000
        truth[(entity, "rpm")] = sum(1 for a in amounts if a > 0)
    return truth


def snapshot_counters(aws: LocalAws, table: str, window: Window) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for item in aws.items(table):
        if item.get("window", {}).get("S") != window.value:
            continue
        for name in ("tpm", "rpm"):
            if name in item:
                key = (item["entity_id"]["S"], name)
                found[key] = found.get(key, 0) + int(item[name]["N"])
    return found


def test_snapshots_count_inserts_modifies_and_refunds_exactly(aws: LocalAws) -> None:
    table, stream = aws.create_table()
    truth = write_bucket_traffic(aws, table)
    config = AggregatorConfig(table_name=table, enable_archival=False, enable_refill=False,
                              snapshot_windows=(Window.HOURLY, Window.DAILY, Window.MONTHLY))
    report = aws.drain(stream, config)
    assert report.records_sent_to_dlq == 0
    for window in Window:
        assert snapshot_counters(aws, table, window) == truth


def test_snapshot_items_carry_what_zae_limiters_reader_needs(aws: LocalAws) -> None:
    table, stream = aws.create_table()
    write_bucket_traffic(aws, table)
    aws.drain(stream, AggregatorConfig(table_name=table, enable_archival=False,
                                       enable_refill=False))
    hour = window_key(int(time.time() * 1000), Window.HOURLY)
    item = next(i for i in aws.items(table)
                if i["SK"]["S"] == f"#USAGE#gpt-4#{hour}#hourly"
                and i["entity_id"]["S"] == "user-1")
    assert item["PK"]["S"] == f"{NS}/ENTITY#user-1"
    assert item["GSI2PK"]["S"] == f"{NS}/RESOURCE#gpt-4"
    assert item["GSI2SK"]["S"] == f"USAGE#{hour}#user-1"
    assert (item["window"]["S"], item["window_start"]["S"]) == ("hourly", hour)
    assert item["total_events"]["N"] == "5"
    assert int(item["ttl"]["N"]) > time.time() + 89 * 86_400
    numbers = {k for k, v in item.items() if "N" in v}
    assert numbers == {"tpm", "rpm", "total_events", "ttl"}
    assert all("S" in v for k, v in item.items() if k.startswith(WATERMARK_PREFIX))


def test_a_redelivered_stream_changes_nothing(aws: LocalAws) -> None:
    table, stream = aws.create_table()
    truth = write_bucket_traffic(aws, table)
    bucket = aws.create_bucket()
    aws.ddb.put_item(TableName=table, Item=audit_image())
    aws.ddb.delete_item(TableName=table, Key={"PK": audit_image()["PK"],
                                              "SK": audit_image()["SK"]})
    config = AggregatorConfig(table_name=table, archive_bucket_name=bucket, enable_refill=False)
    aws.drain(stream, config, batch_size=3)
    first_objects = aws.objects(bucket)
    aws.drain(stream, config, batch_size=3)  # a new mapping: everything again from the start
    assert snapshot_counters(aws, table, Window.HOURLY) == truth
    assert aws.objects(bucket) == first_objects


def test_audit_removals_are_archived_as_gzip_jsonl_with_how_they_went(aws: LocalAws) -> None:
    table, stream = aws.create_table()
    bucket = aws.create_bucket()
    expired, deleted = audit_image(event_id="E-TTL"), audit_image(event_id="E-HAND")
    for image in (expired, deleted):
        aws.ddb.put_item(TableName=table, Item=image)
        aws.ddb.delete_item(TableName=table, Key={"PK": image["PK"], "SK": image["SK"]})
    ttl_keys = {(expired["PK"]["S"], expired["SK"]["S"])}
    config = AggregatorConfig(table_name=table, archive_bucket_name=bucket, enable_refill=False)
    report = aws.drain(stream, config,
                       ttl_keys=lambda keys: (keys["PK"]["S"], keys["SK"]["S"]) in ttl_keys)
    assert report.records_sent_to_dlq == 0
    (key, body), = aws.objects(bucket).items()
    assert key.startswith("audit/year=2023/month=11/day=14/audit-")
    lines = [json.loads(line) for line in gzip.decompress(body).splitlines()]
    assert {(x["event_id"], x["removal"]) for x in lines} == {("E-TTL", "ttl"),
                                                               ("E-HAND", "manual")}
    head = aws.s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentType"] == "application/x-ndjson"
    assert head["ContentEncoding"] == "gzip"


def test_a_hungry_bucket_is_refilled_under_the_rf_lock(aws: LocalAws) -> None:
    table, stream = aws.create_table()
    past = int(time.time() * 1000) - 30_000
    item = bucket_image("hot", tc={"rpm": 0}, tk={"rpm": 100_000}, rf=past)
    aws.ddb.put_item(TableName=table, Item=item)
    aws.ddb.update_item(TableName=table, Key={"PK": item["PK"], "SK": item["SK"]},
                        UpdateExpression="ADD b_rpm_tc :c, b_rpm_tk :d",
                        ExpressionAttributeValues={":c": n(100_000), ":d": n(-100_000)})
    aws.drain(stream, AggregatorConfig(table_name=table, enable_archival=False))
    after = aws.ddb.get_item(TableName=table, Key={"PK": item["PK"], "SK": item["SK"]})["Item"]
    assert int(after["rf"]["N"]) > past
    assert 40_000 <= int(after["b_rpm_tk"]["N"]) <= 100_000


def test_the_lambda_entry_point_reads_its_environment_once(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch,
) -> None:
    table, stream = aws.create_table()
    truth = write_bucket_traffic(aws, table)
    env: dict[str, Any] = {**AggregatorConfig(table_name=table, enable_archival=False).to_env(),
                           "AWS_ENDPOINT_URL": aws.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handler_module.handler, "runtime", None)
    mapping = LocalEventSourceMapping(
        aws.streams, stream, lambda event: handler_module.handler(event, None),
        settings=MappingSettings(batch_size=2), on_failure=aws.dlq_messages.append,
        clock=time.time)
    report = mapping.drain()
    assert report.invocations == 3
    assert snapshot_counters(aws, table, Window.HOURLY) == truth
