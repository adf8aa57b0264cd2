"""The event pipeline's exactly-once proof: a generated Kinesis workload, its ground truth,
and a faulty run through the real handler.

``generate_workload`` writes experiment traffic (several experiments and variants,
assigned and unassigned users, four event types with values, an hour and a day boundary)
with malformed records (bad base64, bad JSON, schema violations, unknown experiments) and
events a producer sent twice, and computes, independently of the pipeline's code, what
the metrics table must hold: per experiment, variant and window the event counts, the
sums and the set of users. ``run`` delivers the records through the faulty mapping over
Kinesis-shaped records (random batch sizes, redelivered batches, bisection,
``ParallelizationFactor`` lanes by partition key) with throttles, lost responses and
crashes on every write, and ``compare`` reads the table and the archive back.

Run it at size with ``python -m local_aws.events_harness --events 100000``.
"""

from __future__ import annotations

import base64
import json
import random
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from local_aws import proof
from local_aws.event_source_mapping import KINESIS
from local_aws.faults import FaultPlan
from local_aws.memory import MemoryDynamoDB, MemoryS3, table_definition
from streamagg_engine.retries import RetryPolicy
from streamagg_engine.stores import ArchiveStore
from streamagg_events.config import EventMetricsConfig
from streamagg_events.handler import Runtime, build_runtime, handle
from streamagg_events.pipeline import Stores
from streamagg_events.stores import LookupStore, MetricsStore

METRICS_TABLE = "event-metrics"
LOOKUP_TABLE = "experiment-lookups"
BUCKET = "event-archive"
STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/events"
SHARD = "shardId-000000000000"
START = datetime(2026, 1, 31, 21, 0, tzinfo=UTC).timestamp()
"""Three hours either side of midnight at a month's end."""
EXPERIMENTS = {"checkout-button": ("control", "green", "blue"),
               "pricing-page": ("control", "annual-first")}
"""Known experiments and their variants; ``retired-test`` is deliberately not in the table."""
EVENT_TYPES = ("exposure", "click", "conversion", "purchase")

CounterTruth = dict[tuple[str, str, str, str], dict[str, Decimal]]
"""(experiment, variant, window, window start) -> ``events``, ``n_<type>``, ``s_<type>``."""
UserTruth = dict[tuple[str, str, str, str], set[str]]


@dataclass
class Workload:
    records: list[dict[str, Any]]
    lookups: list[dict[str, Any]]
    """Lookup table items (DynamoDB JSON) the run must load first."""
    counters: CounterTruth
    users: UserTruth
    counted_ids: set[str]
    malformed: int
    """Records that must be skipped (bad payloads and unknown experiments)."""
    producer_duplicates: int


@dataclass
class Differences(proof.ArchiveDifferences):
    counters: dict[tuple[str, str, str, str], tuple[dict[str, Decimal], dict[str, Decimal]]] = \
        field(default_factory=dict)
    users: dict[tuple[str, str, str, str], tuple[int, int]] = field(default_factory=dict)
    missing_markers: int = 0

    def __bool__(self) -> bool:
        return bool(self.counters or self.users or self.missing_markers) or super().__bool__()


def encode_event(document: Any) -> str:
    """The base64 payload a producer's JSON event arrives as in a Lambda record."""
    return base64.b64encode(json.dumps(document, separators=(",", ":"),
                                       default=_number).encode()).decode()


def _number(value: Any) -> int | float:
    """Decimals as JSON numbers (``float`` repr round-trips up to 15 significant digits)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def kinesis_record(data: str, sequence: int, partition_key: str, arrival: float,
                   shard_id: str = SHARD) -> dict[str, Any]:
    """One record as Lambda hands it to the function (``data`` already base64)."""
    return {
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": partition_key,
                    "sequenceNumber": str(sequence), "data": data,
                    "approximateArrivalTimestamp": arrival},
        "eventSource": "aws:kinesis", "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence}", "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/events", "awsRegion": "us-east-1",
        "eventSourceARN": STREAM_ARN,
    }


Assignments = dict[tuple[str, str], str]
"""(experiment, user) -> variant."""


def lookup_items(users: Iterable[str], rng: random.Random,
                 assigned_share: float = 0.9) -> tuple[list[dict[str, Any]], Assignments]:
    """Experiment items and assignments for ``assigned_share`` of users; and the truth."""
    items: list[dict[str, Any]] = []
    assigned: Assignments = {}
    for experiment, variants in EXPERIMENTS.items():
        items.append({"pk": {"S": f"EXPERIMENT#{experiment}"},
                      "name": {"S": experiment.replace("-", " ").title()},
                      "status": {"S": "running"}, "variants": {"SS": list(variants)}})
        for user in users:
            if rng.random() < assigned_share:
                variant = rng.choice(variants)
                assigned[(experiment, user)] = variant
                items.append({"pk": {"S": f"ASSIGNMENT#{experiment}#{user}"},
                              "variant": {"S": variant},
                              "assigned_at": {"S": "2026-01-30T12:00:00Z"}})
    return items, assigned


def generate_workload(seed: int, events: int, *, users: int = 400, hours: float = 6.0,
                      malformed_share: float = 0.03,
                      duplicate_share: float = 0.02) -> Workload:
    rng = random.Random(seed)
    user_ids = [f"user-{seed}-{i:05d}" for i in range(users)]
    lookups, assigned = lookup_items(user_ids, rng)
    counters: CounterTruth = defaultdict(lambda: defaultdict(Decimal))
    seen_users: UserTruth = defaultdict(set)
    counted: set[str] = set()
    records: list[dict[str, Any]] = []
    sent: list[tuple[str, str]] = []
    malformed = duplicates = 0
    sequence = 49_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000
    for index in range(events):
        sequence += rng.randint(1, 10**6)
        arrival = START + hours * 3600 * index / events
        user = rng.choice(user_ids)
        if sent and rng.random() < duplicate_share:
            data, sent_by = rng.choice(sent)
            records.append(kinesis_record(data, sequence, sent_by, arrival))
            duplicates += 1
            continue
        if rng.random() < malformed_share:
            records.append(kinesis_record(_malformed(rng, index, user, arrival), sequence,
                                          user, arrival))
            malformed += 1
            continue
        experiment = rng.choice([*EXPERIMENTS, *EXPERIMENTS])
        event_type = rng.choices(EVENT_TYPES, (60, 25, 10, 5))[0]
        value = Decimal(rng.randint(0, 50_000)) / 100 if event_type == "purchase" else \
            Decimal(rng.randint(0, 3))
        moment = arrival - rng.uniform(0, 120)
        document: dict[str, Any] = {
            "event_id": f"ev-{seed}-{index:07d}", "event_type": event_type, "user_id": user,
            "experiment_id": experiment, "value": value,
            "timestamp": _iso(moment) if index % 2 else int(moment * 1000),
            "properties": {"page": rng.choice(("/", "/cart", "/pay")), "n": index % 7},
        }
        data = encode_event(document)
        records.append(kinesis_record(data, sequence, user, arrival))
        sent.append((data, user))
        variant = assigned.get((experiment, user), "unassigned")
        counted.add(document["event_id"])
        stamp = datetime.fromtimestamp(int(moment * 1000) // 1000, tz=UTC)
        for window, start in (("hourly", stamp.strftime("%Y-%m-%dT%H:00:00Z")),
                              ("daily", stamp.strftime("%Y-%m-%dT00:00:00Z"))):
            key = (experiment, variant, window, start)
            counters[key]["events"] += 1
            counters[key][f"n_{event_type}"] += 1
            counters[key][f"s_{event_type}"] += value
            seen_users[key].add(user)
    return Workload(records, lookups, {k: dict(v) for k, v in counters.items()},
                    dict(seen_users), counted, malformed, duplicates)


def _malformed(rng: random.Random, index: int, user: str, arrival: float) -> str:
    kind = index % 5
    if kind == 0:
        return "!!not base64!!"
    if kind == 1:
        return base64.b64encode(b'{"event_id": "truncated",').decode()
    if kind == 2:
        return encode_event({"event_id": f"bad-{index}", "event_type": "exposure",
                             "user_id": user, "timestamp": "yesterday"})
    if kind == 3:
        return encode_event([1, 2, 3])
    return encode_event({"event_id": f"gone-{index}", "event_type": "click", "user_id": user,
                         "experiment_id": "retired-test", "timestamp": int(arrival * 1000),
                         "value": rng.randint(0, 3)})


def _iso(epoch_seconds: float) -> str:
    millis = int(epoch_seconds * 1000)
    stamp = datetime.fromtimestamp(millis // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis % 1000:03d}Z"


def harness_config(**overrides: Any) -> EventMetricsConfig:
    return EventMetricsConfig(metrics_table_name=METRICS_TABLE, lookup_table_name=LOOKUP_TABLE,
                              archive_bucket_name=BUCKET, **overrides)


def run(workload: Workload, *, seed: int, ddb: Any, s3: Any,
        config: EventMetricsConfig | None = None, throttle_rate: float = 0.01,
        lost_response_rate: float = 0.01, crash_rate: float = 0.02,
        redeliver_rate: float = 0.05, lanes: int = 3, batch_size: int = 100,
        retries: RetryPolicy | None = None) -> proof.StreamRun:
    """Deliver the workload through the real handler with faults (lookups must be loaded);
    ``retries`` replaces the engine's in-invocation retry policy."""
    config = config or harness_config()
    plan = FaultPlan(random.Random(seed), throttle_rate=throttle_rate,
                     lost_response_rate=lost_response_rate, crash_rate=crash_rate)
    containers = proof.LaneContainers(
        lambda: build_runtime(config.to_env(), dynamodb=ddb, s3=s3, retries=retries))

    def faulty(runtime: Runtime) -> Runtime:
        faulty_ddb, faulty_s3 = plan.invocation_clients(ddb, s3)
        return replace(runtime, stores=Stores(
            lookups=LookupStore(ddb, config.lookup_table_name),
            metrics=MetricsStore(faulty_ddb, config),
            archive=ArchiveStore(faulty_s3, config.archive_bucket_name)))

    return proof.deliver_with_faults(
        workload.records, containers.handler(handle, faulty), plan=plan, seed=seed,
        redeliver_rate=redeliver_rate, lanes=lanes, batch_size=batch_size, shard_id=SHARD,
        stream_arn=STREAM_ARN, shape=KINESIS)


KeyNames = tuple[str, ...]
"""A metrics table's partition and sort key attribute names (``key_attributes``)."""
KEYS: KeyNames = ("pk", "sk")


def read_counters(items: Iterable[Mapping[str, Any]], keys: KeyNames = KEYS,
                  ) -> tuple[CounterTruth, UserTruth, int]:
    """Counters, unique-user sets (shards merged) and the number of markers in a table."""
    counters: CounterTruth = {}
    users: UserTruth = defaultdict(set)
    markers = 0
    pk, sk = keys
    for item in items:
        if item[pk]["S"].startswith("EVENT#"):
            markers += 1
            continue
        key = (item["experiment_id"]["S"], item["variant"]["S"], item["window"]["S"],
               item["window_start"]["S"])
        if "#USERS#" in item[sk]["S"]:
            users[key] |= set(item["users"]["SS"])
            continue
        counters[key] = {name: Decimal(value["N"]) for name, value in item.items()
                         if re.fullmatch(r"events|[ns]_\w+", name) and "N" in value}
    return counters, dict(users), markers


def compare(workload: Workload, items: Iterable[Mapping[str, Any]],
            objects: Iterable[bytes], keys: KeyNames = KEYS) -> Differences:
    counters, users, markers = read_counters(items, keys)
    differences = Differences(counters=proof.counter_differences(workload.counters, counters))
    for key in set(users) | set(workload.users):
        if users.get(key, set()) != workload.users.get(key, set()):
            differences.users[key] = (len(workload.users.get(key, ())), len(users.get(key, ())))
    differences.missing_markers = max(len(workload.counted_ids) - markers, 0)
    # Which copy of an event a line came from shows only in these two.
    differences.check_archive(objects, workload.counted_ids,
                              varying=("sequence_number", "arrived_at"))
    return differences


def memory_tables() -> MemoryDynamoDB:
    """The in-memory metrics and lookup tables the proof runs on, lookups empty."""
    ddb = MemoryDynamoDB()
    ddb.create_table(**table_definition(METRICS_TABLE, "pk", "sk"))
    ddb.create_table(**table_definition(LOOKUP_TABLE, "pk"))
    return ddb


def load_lookups(ddb: Any, items: Sequence[Mapping[str, Any]]) -> None:
    for item in items:
        ddb.put_item(TableName=LOOKUP_TABLE, Item=item)


def run_seed(seed: int, events: int, **kwargs: Any) -> tuple[
        Workload, proof.StreamRun, Differences, MemoryDynamoDB]:
    """One seed on the in-memory stores: workload, run, comparison."""
    workload = generate_workload(seed, events)
    ddb, s3 = memory_tables(), MemoryS3()
    load_lookups(ddb, workload.lookups)
    result = run(workload, seed=seed, ddb=ddb, s3=s3, **kwargs)
    differences = compare(workload, ddb.items(METRICS_TABLE), s3.objects.values())
    return workload, result, differences, ddb


COLUMNS = (proof.Column("records", 8), proof.Column("counted", 8), proof.Column("malformed", 9),
           proof.Column("dup sent", 8), proof.INVOCATIONS, proof.CRASHES, proof.THROTTLED,
           proof.LOST_RESPONSES, proof.SECONDS)


def prove_seed(seed: int, events: int, lanes: int) -> proof.SeedRow:
    """One seed, as a row of the results table."""
    workload, result, differences, _ = run_seed(seed, events, lanes=lanes)
    faults = result.storage_faults
    return proof.SeedRow(
        (len(workload.records), len(workload.counted_ids), workload.malformed,
         workload.producer_duplicates, result.report.invocations, faults.get("crash", 0),
         faults.get("throttled", 0), faults.get("lost_response", 0), result.seconds),
        exact=not differences)


def main(argv: Sequence[str] | None = None, say: Callable[[str], None] | None = None) -> int:
    parser = proof.parser("local_aws.events_harness", __doc__, size="--events", default=20_000,
                          size_help="records per seed", seeds=[1, 2, 3])
    parser.add_argument("--lanes", type=int, default=3, help="ParallelizationFactor")
    args = parser.parse_args(argv)
    return proof.print_results(COLUMNS, args.seeds,
                               lambda seed: prove_seed(seed, args.events, args.lanes), say)


if __name__ == "__main__":
    sys.exit(main())
