"""Progress and write cost under throttling: the usage aggregator with and without the
engine's in-invocation retries (:mod:`streamagg_engine.retries`).

- **Workload**: the exactly-once proof's zae-limiter-shaped stream and its ground truth
  (:func:`local_aws.harness.generate_workload`: bucket INSERTs and MODIFYs with
  consumption and refunds over 300 Zipf-skewed entities, 5 % audit removals), one shard.
- **Delivery**: the local stream mapping with the construct's mapping settings (batches of
  100, bisect on a function error, ``retry_attempts`` retries, then the batch's range goes
  to the on-failure destination while the mapping goes on), optionally redelivering a
  share of the batches that succeeded, as the proof does.
- **Storage**: the in-memory DynamoDB and S3 behind :class:`local_aws.faults.FaultyClient`:
  a share of the writes refused as after the SDK's own retries, a share landing with their
  response lost (half of those re-sent by the SDK onto the write that landed).
- **Counted**: every write request the handler sends, the refused ones included (each is a
  request; only the ones that land cost write units, counted apart), per record of the
  stream; the batches given up; the snapshot items and archive lines that differ from the
  ground truth once the mapping is done (a given-up batch is not redriven here).

"Before" is :data:`~streamagg_engine.retries.NO_RETRIES` (a refused write fails its records
at once); "after" is the engine's default policy. Pauses are skipped: the refusals are
independent draws, so waiting would change the wall time only.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from aggregator import handler as usage
from aggregator.config import AggregatorConfig
from local_aws.event_source_mapping import MappingSettings
from local_aws.faults import DeliveryFaults, FaultPlan, FaultyClient, FaultyEventSourceMapping
from local_aws.harness import BUCKET, TABLE, WINDOWS, compare, generate_workload, memory_stores
from local_aws.proof import quiet
from streamagg_engine.retries import NO_RETRIES, RetryPolicy

_WRITES = frozenset({"update_item", "put_item", "batch_write_item", "transact_write_items",
                     "put_object"})
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/rate-limits/stream/bench"
AFTER = RetryPolicy(pause=lambda _: None)
BEFORE = replace(NO_RETRIES, pause=lambda _: None)


@dataclass(frozen=True)
class Scenario:
    refused: float
    lost: float
    records: int
    redelivered: float = 0.0
    retry_attempts: int = 10
    """The construct's default ``retry_attempts``: 11 deliveries per batch at most."""
    batch_size: int = 100
    seed: int = 7

    def describe(self) -> str:
        text = (f"{self.records:,} records in batches of {self.batch_size}, "
                f"{self.refused:.0%} of writes refused, {self.lost:.0%} of responses lost")
        if self.redelivered:
            text += f", {self.redelivered:.0%} of batches redelivered"
        return text + f", {self.retry_attempts + 1} deliveries per batch at most"


@dataclass(frozen=True)
class Outcome:
    records: int
    batches: int
    invocations: int
    requests: int
    """Write requests sent, refused ones included."""
    landed: int
    """Write requests that reached the store (what costs write units)."""
    given_up: int
    """Batches whose retries ran out: in Lambda, their ranges in the DLQ."""
    off_truth: int
    """Snapshot items and archived event ids that differ from the ground truth."""

    @property
    def requests_per_record(self) -> float:
        return self.requests / self.records

    @property
    def landed_per_record(self) -> float:
        return self.landed / self.records

    def describe(self) -> str:
        return (f"{self.requests_per_record:.2f} write requests per record "
                f"({self.landed_per_record:.2f} landed), {self.invocations:,} invocations, "
                f"{self.given_up} of {self.batches} batches given up, "
                + ("exact" if not self.off_truth else f"{self.off_truth} results off the truth"))


class _CountedWrites:
    """Counts the write requests that reach ``inner`` (below the faults: they landed)."""

    def __init__(self, inner: Any, counts: Counter[str]) -> None:
        self._inner = inner
        self._counts = counts

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in _WRITES:
            return attribute

        def counted(**kwargs: Any) -> Any:
            self._counts["landed"] += 1
            return attribute(**kwargs)
        return counted


def run(scenario: Scenario, policy: RetryPolicy) -> Outcome:
    """One pass of the scenario's stream through the real handler under ``policy``."""
    workload = generate_workload(scenario.seed, scenario.records)
    ddb, s3 = memory_stores()
    counts: Counter[str] = Counter()
    plan = FaultPlan(random.Random(scenario.seed), throttle_rate=scenario.refused,
                     lost_response_rate=scenario.lost)
    config = AggregatorConfig(table_name=TABLE, archive_bucket_name=BUCKET,
                              snapshot_windows=WINDOWS, enable_refill=False, max_workers=4)
    runtime = usage.build_runtime(
        config.to_env(), dynamodb=FaultyClient(_CountedWrites(ddb, counts), plan),
        s3=FaultyClient(_CountedWrites(s3, counts), plan), retries=policy)
    given_up: list[dict[str, Any]] = []
    mapping = FaultyEventSourceMapping(
        None, STREAM_ARN,
        lambda event: usage.handle(event, runtime, now_ms=int(workload_end_ms(workload))),
        settings=MappingSettings(batch_size=scenario.batch_size, bisect_on_error=True,
                                 retry_attempts=scenario.retry_attempts),
        on_failure=given_up.append, clock=lambda: workload_end_ms(workload) / 1000,
        faults=DeliveryFaults(random.Random(scenario.seed + 1),
                              redeliver_rate=scenario.redelivered))
    with quiet():  # the handler's JSON lines, one per invocation
        report = mapping.deliver("shardId-bench", workload.records)
    runtime.pool.shutdown()
    differences = compare(workload, ddb.items(TABLE), s3.objects.values())
    off_truth = (len(differences.snapshots) + len(differences.missing_archive)
                 + len(differences.unexpected_archive) + differences.conflicting_archive_lines)
    return Outcome(records=len(workload.records),
                   batches=-(-len(workload.records) // scenario.batch_size),
                   invocations=report.invocations,
                   requests=counts["landed"] + plan.counts.get("throttled", 0),
                   landed=counts["landed"], given_up=len(given_up), off_truth=off_truth)


def workload_end_ms(workload: Any) -> float:
    """The stream's newest record's time: the clock the invocations run at."""
    return float(workload.records[-1]["dynamodb"]["ApproximateCreationDateTime"]) * 1000


def compare_policies(scenario: Scenario) -> tuple[Outcome, Outcome]:
    """(before, after) on the same stream and the same fault draws' rates."""
    return run(scenario, BEFORE), run(scenario, AFTER)
