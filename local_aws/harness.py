"""The exactly-once proof: a generated workload, its ground truth, and a faulty run.

``generate_workload`` writes a zae-limiter-shaped stream (bucket INSERTs and MODIFYs with
consumption and refunds, refill-only updates, audit items removed by TTL and by hand) and,
independently of the aggregator's code, the counts it must produce: per snapshot item,
the change of ``floor(tc / 1000)`` summed over its records, and the records that moved a
counter. ``run`` pushes the stream through the real handler under the faults of
``local_aws.faults`` and ``compare`` reads the resulting table and archive back.

Run the full size with ``make prove`` (``python -m local_aws.harness``).
"""

from __future__ import annotations

import random
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aggregator.config import AggregatorConfig
from aggregator.handler import Runtime, build_runtime, handle
from aggregator.pipeline import Stores
from aggregator.stores import SnapshotStore
from local_aws import proof
from local_aws.faults import FaultPlan
from local_aws.memory import MemoryDynamoDB, MemoryS3, table_definition
from local_aws.stream_records import TTL_IDENTITY, lambda_record
from streamagg_engine.stores import ArchiveStore
from streamagg_engine.windows import Window

NAMESPACE = "proofNs0001"
TABLE = "rate-limits"
BUCKET = "archive"
START = datetime(2026, 1, 31, 21, 0, tzinfo=UTC).timestamp()
"""Three hours before and after midnight at a month's end: day and month boundaries."""
WINDOWS = (Window.HOURLY, Window.DAILY, Window.MONTHLY)
_RESERVED = frozenset({"PK", "SK", "entity_id", "resource", "window", "window_start",
                       "total_events", "GSI2PK", "GSI2SK", "GSI4PK", "GSI4SK", "ttl"})

SnapshotTruth = dict[tuple[str, str, str, str], Counter[str]]
"""(entity, resource, window, window key) → counters and ``total_events``."""


@dataclass
class Workload:
    records: list[dict[str, Any]]
    snapshots: SnapshotTruth
    archived_event_ids: set[str]


@dataclass
class Differences(proof.ArchiveDifferences):
    snapshots: dict[tuple[str, str, str, str], tuple[dict[str, int], dict[str, int]]] = \
        field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.snapshots) or super().__bool__()


def generate_workload(seed: int, records: int, *, entities: int = 300, hours: float = 6.0,
                      audit_share: float = 0.05) -> Workload:
    rng = random.Random(seed)
    weights = [1 / (rank ** 1.1) for rank in range(1, entities + 1)]
    totals: dict[tuple[str, str, int], dict[str, int]] = {}
    truth: SnapshotTruth = defaultdict(Counter)
    out: list[dict[str, Any]] = []
    archived: set[str] = set()
    sequence = 10**20
    for index in range(records):
        sequence += rng.randint(1, 1000)
        created = START + hours * 3600 * index / records
        if rng.random() < audit_share:
            event_id = f"01AUDIT{seed:04d}{index:012d}"
            archived.add(event_id)
            out.append(_audit_removal(event_id, rng, sequence, created))
            continue
        entity = f"e{rng.choices(range(entities), weights)[0]}"
        resource = rng.choice(("gpt-4", "claude-3", "embed"))
        shard = 1 if rng.random() < 0.1 else 0
        key = (entity, resource, shard)
        before = totals.get(key)
        after = dict(before or {"rpm": 0, "tpm": 0})
        if before is not None and rng.random() < 0.03:
            pass  # a refill-only update: no counter moves
        else:
            after["rpm"] += 1000 if rng.random() < 0.8 else 0
            after["tpm"] += rng.choice((rng.randint(1, 4000) * 250, -rng.randint(0, 999)))
            after["tpm"] = max(after["tpm"], 0)
        totals[key] = after
        old = before or {"rpm": 0, "tpm": 0}
        moved = {name: after[name] // 1000 - old[name] // 1000 for name in after}
        if any(after[name] != old[name] for name in after):
            for window, window_key in _windows(created):
                counters = truth[(entity, resource, window, window_key)]
                counters["total_events"] += sum(after[name] != old[name] for name in after)
                for name, amount in moved.items():
                    counters[name] += amount
        out.append(_bucket_record(key, before, after, sequence, created))
    return Workload(out, dict(truth), archived)


def memory_stores() -> tuple[MemoryDynamoDB, MemoryS3]:
    """The in-memory table and bucket the proof runs on at size."""
    ddb = MemoryDynamoDB()
    ddb.create_table(**table_definition(TABLE, "PK", "SK"))
    return ddb, MemoryS3()


def run(workload: Workload, *, seed: int, throttle_rate: float = 0.01,
        lost_response_rate: float = 0.01, crash_rate: float = 0.02,
        redeliver_rate: float = 0.05, lanes: int = 2, batch_size: int = 100,
        give_up_rate: float = 0.03,
        ddb: Any, s3: Any, config: AggregatorConfig | None = None) -> proof.StreamRun:
    """Deliver the workload's records through the real handler, with faults.

    ``ddb`` and ``s3`` are clients: :mod:`local_aws.memory`'s for size, moto's for realism.
    """
    config = config or AggregatorConfig(table_name=TABLE, archive_bucket_name=BUCKET,
                                        snapshot_windows=WINDOWS, enable_refill=False)
    plan = FaultPlan(random.Random(seed), throttle_rate=throttle_rate,
                     lost_response_rate=lost_response_rate, crash_rate=crash_rate)
    containers = proof.LaneContainers(
        lambda: build_runtime(config.to_env(), dynamodb=ddb, s3=s3))

    def faulty(runtime: Runtime) -> Runtime:
        faulty_ddb, faulty_s3 = plan.invocation_clients(ddb, s3)
        # The container's memory of what it wrote outlives the invocation's faulty clients.
        container = runtime.stores.snapshots
        assert isinstance(container, SnapshotStore)
        return replace(runtime, stores=Stores(snapshots=SnapshotStore(
                                                  faulty_ddb, config, written=container.written),
                                              buckets=None,
                                              archive=ArchiveStore(faulty_s3, BUCKET)))

    return proof.deliver_with_faults(
        workload.records, containers.handler(handle, faulty), plan=plan, seed=seed,
        redeliver_rate=redeliver_rate, lanes=lanes, batch_size=batch_size,
        shard_id="shardId-proof", give_up_rate=give_up_rate,
        stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
        requests=(lambda: ddb.calls) if isinstance(ddb, MemoryDynamoDB) else None)


def compare(workload: Workload, items: Iterable[Mapping[str, Any]],
            objects: Iterable[bytes]) -> Differences:
    """The table's snapshot items and the archive's objects against the ground truth."""
    found: SnapshotTruth = {}
    for item in items:
        if not item["SK"]["S"].startswith("#USAGE#"):
            continue
        key = (item["entity_id"]["S"], item["resource"]["S"], item["window"]["S"],
               item["window_start"]["S"])
        found[key] = Counter({name: int(value["N"]) for name, value in item.items()
                              if "N" in value and (name not in _RESERVED
                                                   or name == "total_events")})
    differences = Differences(snapshots=proof.counter_differences(workload.snapshots, found))
    differences.check_archive(objects, workload.archived_event_ids)
    return differences


def _windows(created: float) -> list[tuple[str, str]]:
    moment = datetime.fromtimestamp(created, tz=UTC)
    return [("hourly", moment.strftime("%Y-%m-%dT%H:00:00Z")),
            ("daily", moment.strftime("%Y-%m-%dT00:00:00Z")),
            ("monthly", moment.strftime("%Y-%m-01T00:00:00Z"))]


def _image(key: tuple[str, str, int], totals: Mapping[str, int]) -> dict[str, Any]:
    entity, resource, shard = key
    image: dict[str, Any] = {
        "PK": {"S": f"{NAMESPACE}/BUCKET#{entity}#{resource}#{shard}"},
        "SK": {"S": "#STATE"}, "entity_id": {"S": entity}, "resource": {"S": resource},
        "rf": {"N": "1769893200000"}, "shard_count": {"N": "2"},
    }
    for name, total in totals.items():
        image[f"b_{name}_tc"] = {"N": str(total)}
        image[f"b_{name}_tk"] = {"N": "0"}
    image["b_wcu_tc"] = {"N": str(sum(totals.values()) % 7919)}
    return image


def _bucket_record(key: tuple[str, str, int], before: Mapping[str, int] | None,
                   after: Mapping[str, int], sequence: int, created: float) -> dict[str, Any]:
    new = _image(key, after)
    return lambda_record("MODIFY" if before else "INSERT",
                         keys={"PK": new["PK"], "SK": new["SK"]}, sequence=str(sequence),
                         created=created, new=new,
                         old=_image(key, before) if before is not None else None)


def _audit_removal(event_id: str, rng: random.Random, sequence: int,
                   created: float) -> dict[str, Any]:
    entity = f"e{rng.randrange(50)}"
    stamp = datetime.fromtimestamp(created - rng.randint(0, 86_400 * 90), tz=UTC)
    old = {
        "PK": {"S": f"{NAMESPACE}/AUDIT#{entity}"}, "SK": {"S": f"#AUDIT#{event_id}"},
        "entity_id": {"S": entity}, "event_id": {"S": event_id}, "action": {"S": "limits_set"},
        "timestamp": {"S": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")}, "principal": {"NULL": True},
        "resource": {"S": "gpt-4"}, "details": {"M": {"n": {"N": str(rng.randint(1, 9))}}},
    }
    return lambda_record("REMOVE", keys={"PK": old["PK"], "SK": old["SK"]},
                         sequence=str(sequence), created=created, old=old,
                         user_identity=TTL_IDENTITY if rng.random() < 0.8 else None)


COLUMNS = (proof.Column("records", 8), proof.INVOCATIONS, proof.CRASHES, proof.THROTTLED,
           proof.LOST_RESPONSES, proof.Column("given up", 8), proof.Column("% of inv.", 9, ".1f"),
           proof.Column("replayed", 8), proof.Column("writes", 8),
           proof.Column("writes/rec", 10, ".2f"), proof.SECONDS)


def prove_seed(seed: int, records: int) -> proof.SeedRow:
    """One seed on the in-memory stores, as a row of the results table."""
    workload = generate_workload(seed, records)
    ddb, s3 = memory_stores()
    result = run(workload, seed=seed, ddb=ddb, s3=s3)
    differences = compare(workload, ddb.items(TABLE), s3.objects.values())
    faults, requests = result.storage_faults, result.storage_requests
    return proof.SeedRow(
        (len(workload.records), result.report.invocations, faults.get("crash", 0),
         faults.get("throttled", 0), faults.get("lost_response", 0), result.given_up,
         100 * result.given_up / max(1, len(result.report.batch_sizes)), result.recovered,
         requests, requests / len(workload.records), result.seconds),
        exact=not differences)


def main(argv: Sequence[str] | None = None) -> int:
    parser = proof.parser("local_aws.harness", __doc__, size="--records", default=100_000,
                          size_help="records per seed", seeds=[1, 2, 3, 4, 5])
    args = parser.parse_args(argv)
    return proof.print_results(COLUMNS, args.seeds, lambda seed: prove_seed(seed, args.records))


if __name__ == "__main__":
    sys.exit(main())
