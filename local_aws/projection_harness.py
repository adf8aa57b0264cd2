"""The projection's convergence proof: a generated source history, its ground truth, faults.

``generate_workload`` plays a history of source items (pending inserts, analyses, tag
changes, re-scores, moves to another day, back to pending, malformed analyses, deletions,
re-creations) as Lambda-shaped stream records, and keeps the items' final state. The
ground truth is the dashboard that final state projects, computed here from plain
Python values, independently of :mod:`streamagg_projection`. ``run`` pushes the records
through the real handler under faults: throttled calls, UnprocessedItems, lost responses,
crashes mid-batch (:class:`local_aws.faults.SimulatedCrash`), random batch sizes,
duplicate deliveries, parallel lanes per item key and bisection
(:class:`local_aws.faults.FaultyEventSourceMapping`). ``compare`` reads the dashboard back.

The source table here is keyed by ``source_id`` alone, so ``ingested_at`` (and with it
the day partition) can change in a MODIFY: the hardest case for stale items.

Run bigger with ``python -m local_aws.projection_harness --records 50000``.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from local_aws import proof
from local_aws.faults import FaultPlan
from local_aws.memory import MemoryDynamoDB, table_definition
from local_aws.stream_records import lambda_record
from streamagg_engine.retries import RetryPolicy
from streamagg_projection.config import ProjectionConfig
from streamagg_projection.handler import Runtime, build_runtime, handle
from streamagg_projection.stores import DashboardStore

DASHBOARD = "dashboard"
START = datetime(2026, 3, 1, 20, 0, tzinfo=UTC).timestamp()
SENTIMENTS = ("positive", "neutral", "negative")
TAGS = ("AI", "regulation", "europe", "climate", "markets", "health", "sports")
TTL_DAYS = 7

Expected = dict[tuple[str, str], dict[str, Any]]
"""(day_partition, sk) -> the attributes the dashboard item must have."""


@dataclass
class Workload:
    records: list[dict[str, Any]]
    final: dict[str, dict[str, Any] | None]
    """source_id -> its final plain state (None: deleted)."""
    expected: Expected


@dataclass
class Differences:
    missing: set[tuple[str, str]] = field(default_factory=set)
    stale: set[tuple[str, str]] = field(default_factory=set)
    wrong: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = \
        field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.missing or self.stale or self.wrong)


# --- the history and its ground truth ------------------------------------------------

def generate_workload(seed: int, records: int, *, items: int = 200) -> Workload:
    rng = random.Random(seed)
    weights = [1 / (rank ** 0.8) for rank in range(1, items + 1)]
    state: dict[str, dict[str, Any] | None] = {}
    out: list[dict[str, Any]] = []
    sequence = 10**20
    for index in range(records):
        sequence += rng.randint(1, 1000)
        created = START + 6 * 3600 * index / records
        source_id = f"newsapi#story-{rng.choices(range(items), weights)[0]}"
        before = state.get(source_id)
        after = _next_state(rng, source_id, before, created)
        state[source_id] = after
        name = "INSERT" if before is None else "REMOVE" if after is None else "MODIFY"
        keys = {"source_id": {"S": source_id}}
        out.append(lambda_record(name, keys=keys, sequence=str(sequence), created=created,
                                 old=_image(before), new=_image(after)))
    return Workload(out, state, expected_dashboard(state))


def _next_state(rng: random.Random, source_id: str, before: dict[str, Any] | None,
                created: float) -> dict[str, Any] | None:
    """What one write does to a source item (None: it is deleted)."""
    if before is None:
        fresh = {"source_id": source_id, "ingested_at": _timestamp(created),
                 "status": "pending", "source_type": "newsapi"}
        return _analysed(rng, fresh) if rng.random() < 0.4 else fresh
    roll = rng.random()
    state = dict(before)
    if roll < 0.08:
        return None
    if roll < 0.2:
        state["status"] = "pending"
    elif roll < 0.4 and state["status"] == "analyzed":
        state["tags"] = sorted(set(state.get("tags", ())) ^ {rng.choice(TAGS)})
    elif roll < 0.5:
        state["ingested_at"] = _timestamp(created - rng.choice((0, 3600, 86_400)))
    elif roll < 0.55:
        state = _analysed(rng, state)
        state.pop(rng.choice(("score", "sentiment")))  # a malformed analysis
    else:
        state = _analysed(rng, state)
    return state


def _analysed(rng: random.Random, state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "status": "analyzed", "sentiment": rng.choice(SENTIMENTS),
            "score": f"{rng.randint(0, 1000) / 1000:g}",
            "tags": sorted(rng.sample(TAGS, rng.randint(0, 3)))}


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _image(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    image: dict[str, Any] = {name: {"S": state[name]} for name in
                             ("source_id", "ingested_at", "status", "source_type", "sentiment")
                             if name in state}
    if "score" in state:
        image["score"] = {"N": state["score"]}
    if state.get("tags"):
        image["matched_tags"] = {"SS": list(state["tags"])}
    return image


def expected_dashboard(final: Mapping[str, Mapping[str, Any] | None]) -> Expected:
    """What the dashboard must hold for these source items, from the docs' table design."""
    expected: Expected = {}
    for state in final.values():
        if state is None or state.get("status") != "analyzed" or \
                "score" not in state or "sentiment" not in state:
            continue
        at, source_id = state["ingested_at"], state["source_id"]
        day = at[:10]
        expires = int(datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.000Z").replace(
            tzinfo=UTC).timestamp()) + TTL_DAYS * 86_400
        common = {"sentiment": state["sentiment"], "score": state["score"],
                  "expires_at": str(expires), "tags": tuple(state.get("tags", ()))}
        expected[(day, f"{at}#{source_id}")] = {
            **common, "combined": f"{state['sentiment']}#{float(state['score']):.2f}",
            "tag": None}
        for tag in state.get("tags", ()):
            expected[(day, f"TAG#{tag}#{at}#{source_id}")] = {
                **common, "combined": None, "tag": tag}
    return expected


def compare(expected: Expected, items: Iterable[Mapping[str, Any]]) -> Differences:
    found: Expected = {}
    for item in items:
        key = (item["day_partition"]["S"], item["sk"]["S"])
        found[key] = {
            "sentiment": item["sentiment"]["S"], "score": item["score"]["N"],
            "expires_at": item["expires_at"]["N"],
            "tags": tuple(sorted(item.get("matched_tags", {}).get("SS", ()))),
            "combined": item.get("sentiment_score_combined", {}).get("S"),
            "tag": item.get("tag", {}).get("S"),
        }
    differences = Differences(missing=set(expected) - set(found),
                              stale=set(found) - set(expected))
    for key in set(expected) & set(found):
        if expected[key] != found[key]:
            differences.wrong[key] = (expected[key], found[key])
    return differences


# --- storage ------------------------------------------------------------------------

def memory_dashboard() -> MemoryDynamoDB:
    """The in-memory dashboard table the proof runs on."""
    ddb = MemoryDynamoDB()
    ddb.create_table(**table_definition(DASHBOARD, "day_partition", "sk"))
    return ddb


# --- the faulty run ------------------------------------------------------------------

def run(workload: Workload, *, seed: int, dashboard: MemoryDynamoDB,
        throttle_rate: float = 0.02, unprocessed_rate: float = 0.1,
        lost_response_rate: float = 0.02, crash_rate: float = 0.1,
        redeliver_rate: float = 0.05, lanes: int = 3, batch_size: int = 100,
        retries: RetryPolicy | None = None) -> proof.StreamRun:
    """Deliver the workload's records through the real handler, with faults; ``retries``
    replaces the engine's in-invocation retry policy."""
    config = ProjectionConfig(dashboard_table_name=DASHBOARD, ttl_days=TTL_DAYS,
                              write_attempts=3)
    plan = FaultPlan(random.Random(seed), throttle_rate=throttle_rate,
                     lost_response_rate=lost_response_rate, unprocessed_rate=unprocessed_rate,
                     crash_rate=crash_rate)
    # The sandbox is gone: whatever it had in flight ends before Lambda retries.
    containers = proof.LaneContainers(
        lambda: build_runtime(config.to_env(), dynamodb=dashboard, retries=retries),
        wait_on_crash=True)

    def faulty(runtime: Runtime) -> Runtime:
        (client,) = plan.invocation_clients(dashboard)
        return replace(runtime, stores=DashboardStore(client, config, sleep=lambda _: None,
                                                      rng=random.Random(seed)))

    return proof.deliver_with_faults(
        workload.records, containers.handler(handle, faulty), plan=plan, seed=seed,
        redeliver_rate=redeliver_rate, lanes=lanes, batch_size=batch_size,
        shard_id="shardId-projection",
        stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/s/stream/x",
        requests=lambda: dashboard.calls)


COLUMNS = (proof.Column("records", 8), proof.Column("expected", 8), proof.INVOCATIONS,
           proof.Column("fn errors", 9), proof.Column("partial", 7), proof.CRASHES,
           proof.THROTTLED, proof.Column("unprocessed", 11), proof.LOST_RESPONSES,
           proof.Column("calls", 7), proof.SECONDS)


def prove_seed(seed: int, records: int, crash_rate: float) -> proof.SeedRow:
    """One seed, as a row of the results table; a run that gave records up is not exact."""
    workload = generate_workload(seed, records)
    dashboard = memory_dashboard()
    result = run(workload, seed=seed, dashboard=dashboard, crash_rate=crash_rate)
    differences = compare(workload.expected, dashboard.items(DASHBOARD))
    faults, report = result.storage_faults, result.report
    note = f"     missing {len(differences.missing)}, stale {len(differences.stale)}, " \
        f"wrong {len(differences.wrong)}" if differences else ""
    return proof.SeedRow(
        (len(workload.records), len(workload.expected), report.invocations,
         report.function_errors, report.partial_failures, faults.get("crash", 0),
         faults.get("throttled", 0), faults.get("unprocessed", 0),
         faults.get("lost_response", 0), result.storage_requests, result.seconds),
        exact=not differences and not result.given_up, note=note)


def main(argv: Sequence[str] | None = None) -> int:
    parser = proof.parser("local_aws.projection_harness", __doc__, size="--records",
                          default=20_000, size_help="records per seed", seeds=[1, 2, 3])
    parser.add_argument("--crash-rate", type=float, default=0.1,
                        help="share of invocations that die after 0-29 of their writes")
    args = parser.parse_args(argv)
    return proof.print_results(COLUMNS, args.seeds,
                               lambda seed: prove_seed(seed, args.records, args.crash_rate))


if __name__ == "__main__":
    sys.exit(main())
