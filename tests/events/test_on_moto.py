"""The real handler against moto's server: events put on a Kinesis stream, read back, counted.

Also the contract of the in-memory store the proof runs on: the same traffic through
it and through moto's DynamoDB leaves the same counters, sets and markers.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import re
import time
from typing import Any

from local_aws.events_harness import (
    compare,
    generate_workload,
    kinesis_record,
    read_counters,
)
from local_aws.memory import MemoryDynamoDB, MemoryS3, table_definition
from local_aws.server import MotoServer, client
from streamagg_events.config import EventMetricsConfig
from streamagg_events.handler import build_runtime, handle
from streamagg_events.processor import ARCHIVE_SCHEMA_VERSION

_names = itertools.count(1)


def _tables(ddb: Any) -> tuple[str, str]:
    n = next(_names)
    metrics, lookups = f"event-metrics-{n}", f"lookups-{n}"
    ddb.create_table(**table_definition(metrics, "pk", "sk"))
    ddb.create_table(**table_definition(lookups, "pk"))
    return metrics, lookups


def _scan(ddb: Any, table: str) -> list[dict[str, Any]]:
    pages = ddb.get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page["Items"]]


def test_the_handler_counts_a_kinesis_stream_on_moto(moto: MotoServer) -> None:
    url = moto.endpoint_url
    ddb, s3, kinesis = client("dynamodb", url), client("s3", url), client("kinesis", url)
    metrics, lookups = _tables(ddb)
    bucket = f"event-archive-{next(_names)}"
    s3.create_bucket(Bucket=bucket)
    stream = f"events-{next(_names)}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    workload = generate_workload(21, 120, users=15)
    for item in workload.lookups:
        ddb.put_item(TableName=lookups, Item=item)
    kinesis.put_records(StreamName=stream, Records=[
        {"Data": _payload(r["kinesis"]["data"]), "PartitionKey": r["kinesis"]["partitionKey"]}
        for r in workload.records])

    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got = kinesis.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    records = [kinesis_record(base64.b64encode(r["Data"]).decode(), int(r["SequenceNumber"]),
                              r["PartitionKey"], r["ApproximateArrivalTimestamp"].timestamp(),
                              shard) for r in got]
    assert len(records) == len(workload.records)

    config = EventMetricsConfig(metrics_table_name=metrics, lookup_table_name=lookups,
                                archive_bucket_name=bucket, max_workers=1)
    runtime = build_runtime(config.to_env(), dynamodb=ddb, s3=s3)
    responses = [handle({"Records": records[i:i + 50]}, runtime, now_ms=int(time.time() * 1000))
                 for i in range(0, len(records), 50)]
    replay = handle({"Records": records}, runtime, now_ms=int(time.time() * 1000))
    assert [*responses, replay] == [{"batchItemFailures": []}] * (len(responses) + 1)

    listing = s3.list_objects_v2(Bucket=bucket)["Contents"]
    bodies = [s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing]
    assert not compare(workload, _scan(ddb, metrics), bodies)
    key = re.compile(r"events/year=2026/month=0[12]/day=\d\d/hour=\d\d/"
                     r"events-shardId-000000000000-\d+-\d+\.jsonl\.gz")
    assert all(key.fullmatch(o["Key"]) for o in listing), [o["Key"] for o in listing]
    line = json.loads(gzip.decompress(bodies[0]).splitlines()[0])
    assert line["sequence_number"].isdigit()
    assert line["experiment_name"]
    # Each object says what it holds in its metadata, read back without its body.
    for item, body in zip(listing, bodies, strict=True):
        lines = [json.loads(text) for text in gzip.decompress(body).splitlines()]
        times = sorted(entry["timestamp"] for entry in lines)
        assert s3.head_object(Bucket=bucket, Key=item["Key"])["Metadata"] == {
            "event-count": str(len(lines)), "first-event-time": times[0],
            "last-event-time": times[-1], "schema-version": ARCHIVE_SCHEMA_VERSION}


def _payload(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        return data.encode()


def test_the_in_memory_store_answers_like_moto(moto: MotoServer) -> None:
    url = moto.endpoint_url
    ddb = client("dynamodb", url)
    metrics, lookups = _tables(ddb)
    workload = generate_workload(22, 80, users=10)
    memory = MemoryDynamoDB()
    for definition in (table_definition(metrics, "pk", "sk"), table_definition(lookups, "pk")):
        memory.create_table(**definition)
    for item in workload.lookups:
        ddb.put_item(TableName=lookups, Item=item)
        memory.put_item(TableName=lookups, Item=item)
    config = EventMetricsConfig(metrics_table_name=metrics, lookup_table_name=lookups,
                                enable_archival=False, max_workers=1)
    for store in (ddb, memory):
        runtime = build_runtime(config.to_env(), dynamodb=store, s3=MemoryS3())
        for start in (0, 30, 0):  # the last pass redelivers what was counted
            handle({"Records": workload.records[start:start + 50]}, runtime, now_ms=1)

    def normal(items: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(i["pk"]["S"], i["sk"]["S"]): i for i in items}

    on_moto, in_memory = normal(_scan(ddb, metrics)), normal(memory.items(metrics))
    assert on_moto.keys() == in_memory.keys()
    assert read_counters(on_moto.values()) == read_counters(in_memory.values())
