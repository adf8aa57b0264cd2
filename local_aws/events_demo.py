"""The event-metrics part of ``make demo``: the example stack on moto, real Kinesis traffic.

:func:`run_demo` deploys the synthesized ``EventMetricsStack`` into moto, loads the
lookup table (experiments and assignments), puts a few hundred events on the deployed
Kinesis stream (some malformed, some sent twice by the "producer"), reads the stream back
and invokes ``streamagg_events.handler`` with the deployed function's environment
through a local Kinesis mapping with the deployed mapping's settings, then replays the
whole stream once more (as after a lost checkpoint). It prints the counters per
experiment, variant and window, the unique users and the archive objects, and compares
them with the traffic's ground truth (:mod:`local_aws.events_harness`).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from local_aws.deploy import DeployedStack, deploy_synthesized_stack
from local_aws.deployed import DeployedPipeline
from local_aws.event_source_mapping import KINESIS, Invoke, MappingReport
from local_aws.events_harness import (
    Workload,
    compare,
    generate_workload,
    kinesis_record,
    read_counters,
)
from local_aws.faults import DeliveryFaults, FaultyEventSourceMapping
from local_aws.server import client
from streamagg_events.handler import Runtime, build_runtime, handle

DEMO_EVENTS = 300
DEMO_SEED = 7
_SHOWN = 10
"""Differences printed one by one; the rest are only counted."""


def run_demo(assembly_dir: Path, stack_name: str, endpoint_url: str,
             say: Callable[[str], None]) -> int:
    """Deploy, write traffic, drive the handler, print, compare; returns the problems found."""
    say(f"== event metrics: deploying {stack_name} to moto")
    stack = deploy_synthesized_stack(assembly_dir, stack_name, endpoint_url)
    skipped = sorted(set(stack.skipped_resources.values()))
    say(f"   created {len(stack.resources)} resources; moto skips {len(skipped)} types it "
        f"does not model ({', '.join(skipped)})")
    kinesis = client("kinesis", endpoint_url)
    ddb = client("dynamodb", endpoint_url)
    s3 = client("s3", endpoint_url)
    stream = _ensure_stream(kinesis, stack.output("StreamName"), say)
    workload = generate_workload(DEMO_SEED, DEMO_EVENTS, users=40, hours=2.0)
    lookup_table = stack.output("LookupTableName")
    for item in workload.lookups:
        ddb.put_item(TableName=lookup_table, Item=item)
    say(f"   loaded {len(workload.lookups)} experiment and assignment items into {lookup_table}")
    _put_events(kinesis, stream, workload)
    say(f"== event metrics: put {len(workload.records)} records on {stream} "
        f"({workload.malformed} malformed, {workload.producer_duplicates} sent twice)")

    records = _read_stream(kinesis, stream)
    log_path = Path(assembly_dir) / "events-demo-handler.log"
    report, dlq = _drive(stack, endpoint_url, records, log_path)
    say(f"   {report.invocations} invocations over {len(records)} records, twice (the "
        f"second pass replays the whole stream); handler logs in {log_path}")
    if report.records_filtered:
        say(f"   the mapping's filters dropped {report.records_filtered} record(s)")
    problems = _report(stack, ddb, s3, workload, say)
    if dlq:
        say(f"   PROBLEM: the DLQ holds {dlq} on-failure message(s)")
        problems += dlq
    say(f"== event metrics: {'OK' if not problems else f'{problems} problem(s)'}")
    return problems


def _ensure_stream(kinesis: Any, name: str, say: Callable[[str], None]) -> str:
    try:
        kinesis.describe_stream_summary(StreamName=name)
    except ClientError:
        say(f"   moto's CloudFormation made no stream {name}; creating it directly")
        kinesis.create_stream(StreamName=name, ShardCount=1)
    return name


def _put_events(kinesis: Any, stream: str, workload: Workload) -> None:
    """The workload's payloads as a producer sends them (raw bytes; Kinesis base64s them)."""
    entries = []
    for record in workload.records:
        data = record["kinesis"]["data"]
        try:
            payload = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            payload = data.encode()  # not base64 on the wire: it arrives as non-JSON bytes
        entries.append({"Data": payload, "PartitionKey": record["kinesis"]["partitionKey"]})
    for start in range(0, len(entries), 500):
        kinesis.put_records(StreamName=stream, Records=entries[start:start + 500])


def _read_stream(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every record of every shard, Lambda-shaped, in shard order."""
    records: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            for raw in page["Records"]:
                records.append(kinesis_record(
                    base64.b64encode(raw["Data"]).decode(), int(raw["SequenceNumber"]),
                    raw["PartitionKey"], raw["ApproximateArrivalTimestamp"].timestamp(),
                    shard["ShardId"]))
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def _drive(stack: DeployedStack, endpoint_url: str, records: Sequence[dict[str, Any]],
           log_path: Path) -> tuple[MappingReport, int]:
    pipeline = DeployedPipeline(stack, endpoint_url, log_path)
    runtimes: list[Runtime] = []

    def local_handler(env: dict[str, str]) -> Invoke:
        runtime = build_runtime(env, dynamodb=client("dynamodb", endpoint_url),
                                s3=client("s3", endpoint_url))
        runtimes.append(runtime)
        return lambda event: handle(event, runtime, now_ms=int(time.time() * 1000))

    # moto 5.2.1 copies a table's whole state inside TransactWriteItems without a lock, so
    # concurrent transactions can fail there; one worker keeps the demo's output clean.
    invoke = pipeline.invoke_with(local_handler, {"EVENTS_MAX_WORKERS": "1"})
    lanes = int(pipeline.mapping_spec.properties.get("ParallelizationFactor", 1))
    mapping = pipeline.stream_mapping(
        invoke, shape=KINESIS, mapping=FaultyEventSourceMapping,
        faults=DeliveryFaults(random.Random(DEMO_SEED), lanes=lanes))
    shard = records[0]["eventID"].partition(":")[0] if records else "shard"
    with pipeline.logs():
        mapping.deliver(shard, records)
        mapping.deliver(shard, records)
    for runtime in runtimes:
        runtime.pool.shutdown()
    return mapping.report, pipeline.messages_left()


def _key_names(ddb: Any, table: str) -> tuple[str, ...]:
    """The table's partition and sort key names, as deployed (``pk``/``sk``, or seed 003's
    ``partition_key``/``sort_key`` when synthesized with ``-c events_profile=seed-003``)."""
    schema = ddb.describe_table(TableName=table)["Table"]["KeySchema"]
    return tuple(key["AttributeName"] for key in sorted(schema, key=lambda k: k["KeyType"]))


def _report(stack: DeployedStack, ddb: Any, s3: Any, workload: Workload,
            say: Callable[[str], None]) -> int:
    table = stack.output("MetricsTableName")
    pages = ddb.get_paginator("scan").paginate(TableName=table)
    items = [item for page in pages for item in page["Items"]]
    keys = _key_names(ddb, table)
    counters, users, markers = read_counters(items, keys)
    say(f"   {table}: {len(counters)} counter items, {markers} event markers")
    rows: list[tuple[str, ...]] = [(
        "experiment", "variant", "window", "start", "events", "exposure", "click",
        "conversion", "purchase", "revenue", "users")]
    for key in sorted(counters):
        amounts = counters[key]
        rows.append((*key, *(str(amounts.get(name, 0)) for name in (
            "events", "n_exposure", "n_click", "n_conversion", "n_purchase", "s_purchase")),
            str(len(users.get(key, ())))))
    _table(rows, say)
    bucket = stack.output("ArchiveBucketName")
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    bodies = []
    say(f"   archive s3://{bucket}: {len(listing)} objects")
    for entry in listing:
        body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
        bodies.append(body)
        lines = len(gzip.decompress(body).splitlines())
        say(f"     {entry['Key']}  ({lines} events, {entry['Size']} bytes)")
    differences = compare(workload, items, bodies, keys)
    say(f"   ground truth: {len(workload.counted_ids)} distinct valid events, "
        f"{workload.malformed} malformed skipped, {workload.producer_duplicates} duplicates")
    problems = 0
    for key, (expected, actual) in sorted(differences.counters.items()):
        if problems < _SHOWN:
            say(f"   PROBLEM counters {key}: expected {expected}, found {actual}")
        problems += 1
    for key, (expected_users, found_users) in sorted(differences.users.items()):
        if problems < _SHOWN:
            say(f"   PROBLEM unique users {key}: expected {expected_users}, "
                f"found {found_users}")
        problems += 1
    for name in ("missing_markers", "conflicting_archive_lines"):
        if getattr(differences, name):
            say(f"   PROBLEM {name}: {getattr(differences, name)}")
            problems += 1
    if differences.missing_archive or differences.unexpected_archive:
        say(f"   PROBLEM archive: {len(differences.missing_archive)} events missing, "
            f"{len(differences.unexpected_archive)} unexpected")
        problems += 1
    if not problems:
        say("   counters, sums, unique users, markers and archive match the ground truth "
            "exactly (after a full replay)")
    return problems


def _table(rows: Sequence[Sequence[str]], say: Callable[[str], None]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        say("   " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
