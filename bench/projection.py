"""The projection (seed 004) over HTTP: the real handler against the seed's own writes.

- **Workload**: :func:`local_aws.projection_harness.generate_workload` (a history of 200
  source items: pending inserts, analyses, tag changes, re-scores, moves to another day,
  back to pending, malformed analyses, deletions), in batches of 100 records in stream
  order, seed 004's batch size.
- **Ours**: ``streamagg_projection.handler.handle`` with the function's own SDK settings
  over moto's server: each batch's last state per item, its dashboard items written and
  stale ones deleted in BatchWriteItem requests of up to 25.
- **Baseline**, seed 004 as written: per analyzed record one PutItem for the base item and
  one per matched tag ("1 + N per stream record"), every call in turn; it deletes nothing,
  so unlike ours it leaves stale items behind when an item moves, loses its analysis or is
  deleted.
- ``projection_results_off_truth``: dashboard items missing, stale or wrong against the
  workload's ground truth once every batch has run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from local_aws import projection_harness as harness
from local_aws.memory import table_definition
from local_aws.proof import now_ms
from local_aws.server import client
from streamagg_engine.clients import sdk_config
from streamagg_projection.config import ProjectionConfig
from streamagg_projection.handler import build_runtime, handle

from . import pipelines
from .figures import Figure, Goal
from .pipelines import RequestLog, Run, counted_client, failed_count, timed_batches

BATCH_SIZE = 100
SEED = 5
CLAIM_MS = 5_000
"""Seed 004: batches of 100 records take "~5-10 sec"; the low end is the goal."""
NAIVE_TABLE = "naive-dashboard"


@dataclass(frozen=True)
class Outcome:
    ours: Run
    naive: Run
    off_truth: int


def measure(endpoint_url: str, records: int, say: Callable[[str], None]) -> Outcome:
    workload = harness.generate_workload(SEED, records)
    batches = [workload.records[i:i + BATCH_SIZE]
               for i in range(0, len(workload.records), BATCH_SIZE)]
    config = ProjectionConfig(dashboard_table_name=harness.DASHBOARD, ttl_days=harness.TTL_DAYS,
                              log_level="WARNING")
    setup = client("dynamodb", endpoint_url)
    setup.create_table(**table_definition(config.dashboard_table_name, "day_partition", "sk"))
    setup.create_table(**table_definition(NAIVE_TABLE, "day_partition", "sk"))

    log = RequestLog()
    runtime = build_runtime(config.to_env(), dynamodb=counted_client(
        "dynamodb", endpoint_url, log, sdk_config(config.max_workers)))

    def ours(batch: list[dict[str, Any]]) -> int:
        response = handle({"Records": batch}, runtime, now_ms=now_ms())
        return failed_count(response, batch, lambda r: r["dynamodb"]["SequenceNumber"])

    try:
        say(f"projection: {len(workload.records):,} records through the handler over HTTP")
        ours_run = timed_batches(batches, ours, log, say=say, label="projection, ours")
    finally:
        runtime.pool.shutdown(wait=True)
    items = [item for page in setup.get_paginator("scan").paginate(
        TableName=config.dashboard_table_name) for item in page["Items"]]
    differences = harness.compare(workload.expected, items)

    naive_log = RequestLog()
    naive = NaiveProjection(counted_client("dynamodb", endpoint_url, naive_log))
    say("projection: the same batches through the naive baseline")
    naive_run = timed_batches(batches, naive.process, naive_log, say=say,
                              label="projection, baseline")
    return Outcome(ours_run, naive_run, len(differences.missing) + len(differences.stale)
                   + len(differences.wrong))


def figures(outcome: Outcome) -> list[Figure]:
    return [*pipelines.figures("projection", "records", outcome.ours, outcome.naive,
                               batch_goal=Goal("<=", CLAIM_MS)),
            Figure("projection_results_off_truth", outcome.off_truth, "items", Goal("==", 0))]


def note(outcome: Outcome) -> str:
    ours, naive = outcome.ours, outcome.naive
    return (f"Projection (seed 004): {ours.records:,} records in batches of {BATCH_SIZE} over "
            f"HTTP to moto; ours {ours.writes:,} write requests, {ours.median_batch_ms:,.0f} "
            f"ms and {ours.median_batch_cpu_ms:,.0f} ms CPU per batch (median; seed 004 says "
            f"~5-10 s); baseline {naive.writes:,} write requests, "
            f"{naive.median_batch_ms:,.0f} ms and {naive.median_batch_cpu_ms:,.0f} ms CPU; "
            f"{outcome.off_truth} dashboard items off the ground truth, "
            f"{ours.failed_records} records reported failed.")


class NaiveProjection:
    """Seed 004's writes as its document spells them: a PutItem for the base item and
    one per tag, per analyzed record, one after the other."""

    def __init__(self, dynamodb: Any, table: str = NAIVE_TABLE) -> None:
        self._ddb, self._table = dynamodb, table

    def process(self, records: Sequence[dict[str, Any]]) -> int:
        for record in records:
            new = record["dynamodb"].get("NewImage") or {}
            if new.get("status", {}).get("S") != "analyzed" or \
                    "score" not in new or "sentiment" not in new:
                continue
            at, source_id = new["ingested_at"]["S"], new["source_id"]["S"]
            tags = new.get("matched_tags", {}).get("SS", [])
            base = {"day_partition": {"S": at[:10]}, "sk": {"S": f"{at}#{source_id}"},
                    "source_id": {"S": source_id}, "sentiment": new["sentiment"],
                    "score": new["score"], "ingested_at": {"S": at}}
            if tags:
                base["matched_tags"] = {"SS": tags}
            self._ddb.put_item(TableName=self._table, Item=base)
            for tag in tags:
                self._ddb.put_item(TableName=self._table, Item={
                    **base, "sk": {"S": f"TAG#{tag}#{at}#{source_id}"}, "tag": {"S": tag}})
        return 0
