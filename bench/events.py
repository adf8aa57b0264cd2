"""The event pipeline (seed 003) over HTTP: the real handler against a naive processor.

- **Workload**: :func:`local_aws.events_harness.generate_workload` (two experiments, 400
  users, 90 % of them assigned, four event types over six hours across a midnight, 3 %
  malformed records and 2 % events a producer sent twice), cut into batches of 100
  records in stream order, the size seed 003 measures ("100 events processed in
  < 1000 ms").
- **Ours**: ``streamagg_events.handler.handle`` with the function's own SDK settings over
  moto's server (its DynamoDB writes one at a time: :class:`bench.moto_process.SerialWrites`):
  lookups in one BatchGetItem, each batch's counters, markers and unique
  users coalesced per experiment, variant and window into transactions and set updates,
  one archive object per hour.
- **Baseline**, seed 003's processor the straightforward way: per valid event, a GetItem
  for the experiment and one for the assignment, then per window one UpdateItem that ADDs
  the event's counters and its user; one gzip JSONL object per batch; every call in turn.
  It keeps no markers, so unlike ours it counts a redelivered event twice.
- **Seed 003's batch time** is measured a second way too: moto answers a
  TransactWriteItems of 100 actions in about a second (it copies the table), which says
  nothing of DynamoDB. So the batches also go, signed and sent over HTTP, to
  ``bench.endpoint``, which answers every call after 10 ms (the usage benchmark's
  latency) and the lookups with the workload's items: the handler's own cost plus
  AWS-like round trips, ours and the baseline alike.
- **Error rate**, seed 003's "< 0.1 % for valid events": valid events (neither malformed
  nor an unknown experiment's) whose marker is missing from the table once every batch
  has run, over all valid events; ``events_results_off_truth`` counts the counter and
  user-set items that differ from the workload's ground truth.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from local_aws import events_harness as harness
from local_aws.memory import table_definition
from local_aws.proof import now_ms
from local_aws.server import client
from streamagg_engine.clients import sdk_config
from streamagg_events.config import EventMetricsConfig
from streamagg_events.handler import build_runtime, handle

from . import endpoint, pipelines
from .figures import Figure, Goal
from .moto_process import SerialWrites
from .pipelines import RequestLog, Run, counted_client, failed_count, timed_batches

BATCH_SIZE = 100
SEED = 11
CLAIM_MS = 1_000
"""Seed 003: "100 events processed in < 1000 ms"."""
CLAIM_ERROR_PERCENT = 0.1
"""Seed 003: "Error Rate: < 0.1 % for valid events"."""


LATENCY_S = 0.010
"""Per call at ``bench.endpoint``, as in the usage aggregator's wall-time figures."""


@dataclass(frozen=True)
class Outcome:
    ours: Run
    naive: Run
    ours_at_latency: Run
    naive_at_latency: Run
    valid_events: int
    missing_markers: int
    off_truth: int

    @property
    def error_percent(self) -> float:
        return 100 * self.missing_markers / max(1, self.valid_events)


def measure(endpoint_url: str, events: int, say: Callable[[str], None]) -> Outcome:
    workload = harness.generate_workload(SEED, events)
    batches = [workload.records[i:i + BATCH_SIZE]
               for i in range(0, len(workload.records), BATCH_SIZE)]
    config = harness.harness_config(log_level="WARNING")
    setup_ddb = client("dynamodb", endpoint_url)
    setup_s3 = client("s3", endpoint_url)
    _create(setup_ddb, setup_s3, workload, config)

    say(f"events: {len(workload.records):,} records through the handler over HTTP to moto")
    ours_run = _ours(batches, endpoint_url, config, say, "events, ours", moto=True)
    items = _scan(setup_ddb, config.metrics_table_name)
    differences = harness.compare(workload, items, [])
    markers = {item["pk"]["S"].removeprefix("EVENT#") for item in items
               if item["pk"]["S"].startswith("EVENT#")}
    missing = len(workload.counted_ids - markers)

    naive_log = RequestLog()
    naive = NaiveEventProcessor(counted_client("dynamodb", endpoint_url, naive_log),
                                counted_client("s3", endpoint_url, naive_log))
    say("events: the same batches through the naive baseline")
    naive_run = timed_batches(batches, naive.process, naive_log, say=say,
                              label="events, baseline")
    say(f"events: the same batches, ours then the baseline, over HTTP to a local endpoint "
        f"answering after {LATENCY_S * 1000:g} ms")
    with endpoint.running(LATENCY_S, workload.lookups) as url:
        ours_at_latency = _ours(batches, url, config, say, "events at 10 ms, ours")
        naive_log = RequestLog()
        naive = NaiveEventProcessor(counted_client("dynamodb", url, naive_log),
                                    counted_client("s3", url, naive_log))
        naive_at_latency = timed_batches(batches, naive.process, naive_log, say=say,
                                         label="events at 10 ms, baseline")
    return Outcome(ours_run, naive_run, ours_at_latency, naive_at_latency,
                   len(workload.counted_ids), missing,
                   len(differences.counters) + len(differences.users))


def _ours(batches: Sequence[Sequence[dict[str, Any]]], endpoint_url: str,
          config: EventMetricsConfig, say: Callable[[str], None], label: str, *,
          moto: bool = False) -> Run:
    """The batches through the real handler, its clients pointed at ``endpoint_url``."""
    log = RequestLog()
    sdk = sdk_config(config.max_workers)
    dynamodb = counted_client("dynamodb", endpoint_url, log, sdk)
    runtime = build_runtime(config.to_env(), dynamodb=SerialWrites(dynamodb) if moto
                            else dynamodb, s3=counted_client("s3", endpoint_url, log, sdk))

    def ours(batch: list[dict[str, Any]]) -> int:
        response = handle({"Records": batch}, runtime, now_ms=now_ms())
        return failed_count(response, batch, lambda r: r["kinesis"]["sequenceNumber"])

    try:
        return timed_batches(batches, ours, log, say=say, label=label)
    finally:
        runtime.pool.shutdown(wait=True)


def figures(outcome: Outcome) -> list[Figure]:
    ours, naive = outcome.ours_at_latency, outcome.naive_at_latency
    return [
        *pipelines.figures("events", "records", outcome.ours, outcome.naive),
        Figure("events_batch_of_100_wall_time_at_10ms_slowest", ours.slowest_batch_ms, "ms",
               Goal("<=", CLAIM_MS), naive.slowest_batch_ms / ours.slowest_batch_ms),
        Figure("events_throughput_at_10ms", ours.per_second, "records/s", None,
               ours.per_second / naive.per_second),
        Figure("events_error_rate", outcome.error_percent, "%",
               Goal("<=", CLAIM_ERROR_PERCENT)),
        Figure("events_results_off_truth", outcome.off_truth, "items", Goal("==", 0)),
    ]


def note(outcome: Outcome) -> str:
    ours, naive = outcome.ours, outcome.naive
    fast, slow = outcome.ours_at_latency, outcome.naive_at_latency
    return (f"Event metrics (seed 003): {ours.records:,} records in batches of {BATCH_SIZE} "
            f"over HTTP to moto; ours {ours.writes:,} write requests, "
            f"{ours.median_batch_ms:,.0f} ms ({ours.median_batch_cpu_ms:,.0f} ms CPU) per "
            f"batch; baseline {naive.writes:,} write requests, {naive.median_batch_ms:,.0f} "
            f"ms ({naive.median_batch_cpu_ms:,.0f} ms CPU). At {LATENCY_S * 1000:g} ms per "
            f"call: ours {fast.median_batch_ms:,.0f} ms median, {fast.slowest_batch_ms:,.0f} "
            f"ms slowest (claim < {CLAIM_MS:,} ms); baseline {slow.median_batch_ms:,.0f} ms "
            f"median. {outcome.valid_events:,} valid "
            f"events, {outcome.missing_markers} not counted ({outcome.error_percent:.3f} %, "
            f"claim < {CLAIM_ERROR_PERCENT} %), {ours.failed_records} records reported "
            f"failed.")


def _create(ddb: Any, s3: Any, workload: harness.Workload, config: EventMetricsConfig) -> None:
    ddb.create_table(**table_definition(config.metrics_table_name, "pk", "sk"))
    ddb.create_table(**table_definition(config.lookup_table_name, "pk"))
    s3.create_bucket(Bucket=config.archive_bucket_name)
    for start in range(0, len(workload.lookups), 25):
        ddb.batch_write_item(RequestItems={config.lookup_table_name: [
            {"PutRequest": {"Item": item}} for item in workload.lookups[start:start + 25]]})


def _scan(ddb: Any, table: str) -> list[dict[str, Any]]:
    return [item for page in ddb.get_paginator("scan").paginate(TableName=table)
            for item in page["Items"]]


class NaiveEventProcessor:
    """Seed 003's pipeline the straightforward way: per event, two lookups and one counter
    update per window; one archive object per batch; every call in turn."""

    def __init__(self, dynamodb: Any, s3: Any, *,
                 metrics_table: str = "naive-event-metrics",
                 lookup_table: str = harness.LOOKUP_TABLE,
                 bucket: str = harness.BUCKET) -> None:
        self._ddb, self._s3 = dynamodb, s3
        self._metrics, self._lookups, self._bucket = metrics_table, lookup_table, bucket
        dynamodb.create_table(**table_definition(metrics_table, "pk", "sk"))

    def process(self, records: Sequence[dict[str, Any]]) -> int:
        archived: list[str] = []
        for record in records:
            event = self._parse(record)
            if event is None:
                continue
            experiment = self._get(f"EXPERIMENT#{event['experiment_id']}")
            if experiment is None:
                continue
            assignment = self._get(f"ASSIGNMENT#{event['experiment_id']}#{event['user_id']}")
            variant = assignment["variant"]["S"] if assignment else "unassigned"
            moment = _moment(event["timestamp"])
            for window, start in (("hourly", moment.strftime("%Y-%m-%dT%H:00:00Z")),
                                  ("daily", moment.strftime("%Y-%m-%dT00:00:00Z"))):
                self._count(event, variant, window, start)
            archived.append(json.dumps(event, separators=(",", ":")))
        if archived:
            first = records[0]["kinesis"]["sequenceNumber"]
            self._s3.put_object(Bucket=self._bucket, Key=f"naive/events-{first}.jsonl.gz",
                                Body=gzip.compress(("\n".join(archived) + "\n").encode()),
                                ContentType="application/x-ndjson", ContentEncoding="gzip")
        return 0

    @staticmethod
    def _parse(record: dict[str, Any]) -> dict[str, Any] | None:
        try:
            event = json.loads(base64.b64decode(record["kinesis"]["data"], validate=True))
        except (binascii.Error, ValueError):
            return None
        if not isinstance(event, dict) or not {"event_id", "event_type", "user_id",
                                               "experiment_id", "timestamp"} <= event.keys():
            return None
        try:
            _moment(event["timestamp"])
        except (TypeError, ValueError):
            return None
        return event

    def _get(self, key: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._ddb.get_item(
            TableName=self._lookups, Key={"pk": {"S": key}}).get("Item")
        return item

    def _count(self, event: dict[str, Any], variant: str, window: str, start: str) -> None:
        kind = event["event_type"]
        self._ddb.update_item(
            TableName=self._metrics,
            Key={"pk": {"S": f"{event['experiment_id']}#{variant}"},
                 "sk": {"S": f"{window}#{start}"}},
            UpdateExpression="ADD #events :one, #n :one, #s :value, #users :user",
            ExpressionAttributeNames={"#events": "events", "#n": f"n_{kind}",
                                      "#s": f"s_{kind}", "#users": "users"},
            ExpressionAttributeValues={":one": {"N": "1"},
                                       ":value": {"N": str(Decimal(str(event.get("value", 0))))},
                                       ":user": {"SS": [event["user_id"]]}})


def _moment(stamp: Any) -> datetime:
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return datetime.fromtimestamp(stamp / 1000, tz=UTC)
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).astimezone(UTC)
