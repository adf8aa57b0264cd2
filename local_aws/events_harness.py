"""The event pipeline's exactly-once proof: a generated Kinesis workload, its ground truth,
and a faulty run through the real handler.

``generate_workload`` writes experiment traffic (several experiments and variants,
assigned and unassigned users, four event types with values, an hour and a day boundary)
with malformed records (bad base64, bad JSON, schema violations, unknown experiments) and
events a producer sent twice, and computes, independently of the pipeline's code, what
the metrics table must hold: per experiment, variant and window the event counts, the
sums and the set of users. ``run`` delivers the records through
:class:`KinesisFaultyMapping` (random batch sizes, redelivered batches, bisection,
``ParallelizationFactor`` lanes by partition key) with throttles, lost responses and
crashes on every write, and ``compare`` reads the table and the archive back.

Run it at size with ``python -m local_aws.events_harness --events 100000``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import json
import os
import random
import re
import sys
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from aggregator.events.config import EventMetricsConfig
from aggregator.events.handler import Runtime, build_runtime, handle
from aggregator.events.pipeline import EventStores
from aggregator.events.stores import LookupStore, MetricsStore
from aggregator.stores import ArchiveStore
from botocore.exceptions import ClientError

from local_aws.event_source_mapping import MappingReport, MappingSettings
from local_aws.faults import (
    DeliveryFaults,
    FaultPlan,
    FaultyClient,
    FaultyEventSourceMapping,
    SimulatedCrash,
)
from local_aws.memory import MemoryS3

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
class RunResult:
    report: MappingReport
    storage_faults: dict[str, int]
    seconds: float
    given_up: int


@dataclass
class Differences:
    counters: dict[tuple[str, str, str, str], tuple[dict[str, Decimal], dict[str, Decimal]]] = \
        field(default_factory=dict)
    users: dict[tuple[str, str, str, str], tuple[int, int]] = field(default_factory=dict)
    missing_markers: int = 0
    missing_archive: set[str] = field(default_factory=set)
    unexpected_archive: set[str] = field(default_factory=set)
    conflicting_archive_lines: int = 0

    def __bool__(self) -> bool:
        return bool(self.counters or self.users or self.missing_markers or self.missing_archive
                    or self.unexpected_archive or self.conflicting_archive_lines)


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


class KinesisFaultyMapping(FaultyEventSourceMapping):
    """The local mapping's retry, bisection and redelivery, for Kinesis-shaped records.

    With ``lanes`` > 1 (``ParallelizationFactor``) a shard's records are split by partition
    key and the lanes run concurrently: order holds per partition key only.
    """

    def deliver(self, shard_id: str, records: Sequence[dict[str, Any]]) -> MappingReport:
        lanes = max(self._faults.lanes, 1)
        split: list[list[dict[str, Any]]] = [[] for _ in range(lanes)]
        for record in records:
            key = record["kinesis"]["partitionKey"].encode()
            split[zlib.crc32(key) % lanes].append(record)
        deliver_lane = super(FaultyEventSourceMapping, self).deliver
        with ThreadPoolExecutor(lanes) as pool:
            for future in [pool.submit(deliver_lane, shard_id, lane) for lane in split if lane]:
                future.result()
        return self.report

    def _drop_expired(self, shard_id: str, batch: list[dict[str, Any]],
                      retries_used: int) -> list[dict[str, Any]]:
        max_age = self._settings.max_record_age_seconds
        if max_age < 0:
            return batch
        now = self._clock()
        expired = [r for r in batch
                   if now - float(r["kinesis"]["approximateArrivalTimestamp"]) > max_age]
        if expired:
            self._give_up(shard_id, expired, "RecordAgeExceeded", retries_used)
        return [r for r in batch if r not in expired]

    @staticmethod
    def _first_failure(batch: Sequence[dict[str, Any]], response: Any) -> int | None:
        failures = (response or {}).get("batchItemFailures") if isinstance(response, dict) \
            else None
        if not failures:
            return None
        positions = {r["kinesis"]["sequenceNumber"]: i for i, r in enumerate(batch)}
        return min(positions.get(str(f.get("itemIdentifier")), 0) for f in failures)

    def _give_up(self, shard_id: str, batch: Sequence[dict[str, Any]], condition: str,
                 retries_used: int) -> None:
        self.report.records_sent_to_dlq += len(batch)
        self._on_failure({
            "requestContext": {"condition": condition,
                               "approximateInvokeCount": retries_used + 1},
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": batch[0]["kinesis"]["sequenceNumber"],
                "endSequenceNumber": batch[-1]["kinesis"]["sequenceNumber"],
                "batchSize": len(batch), "streamArn": STREAM_ARN,
            },
        })


class _FaultyTransactions(FaultyClient):
    """FaultyClient, with transactions among the writes that fail."""

    def __getattr__(self, name: str) -> Any:
        if name == "transact_write_items":
            call = getattr(self._inner, name)
            return lambda **kwargs: self._write(name, call, kwargs)
        return super().__getattr__(name)


def harness_config(**overrides: Any) -> EventMetricsConfig:
    return EventMetricsConfig(metrics_table_name=METRICS_TABLE, lookup_table_name=LOOKUP_TABLE,
                              archive_bucket_name=BUCKET, **overrides)


def run(workload: Workload, *, seed: int, ddb: Any, s3: Any,
        config: EventMetricsConfig | None = None, throttle_rate: float = 0.01,
        lost_response_rate: float = 0.01, crash_rate: float = 0.02,
        redeliver_rate: float = 0.05, lanes: int = 3, batch_size: int = 100) -> RunResult:
    """Deliver the workload through the real handler with faults (lookups must be loaded)."""
    config = config or harness_config()
    plan = FaultPlan(random.Random(seed), throttle_rate=throttle_rate,
                     lost_response_rate=lost_response_rate, crash_rate=crash_rate)
    containers = threading.local()
    given_up: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any]) -> Mapping[str, Any]:
        runtime: Runtime | None = getattr(containers, "runtime", None)
        if runtime is None:
            runtime = build_runtime(config.to_env(), dynamodb=ddb, s3=s3)
            containers.runtime = runtime
        crash_after = plan.crash_after()
        faulty_ddb = _FaultyTransactions(ddb, plan, crash_after=crash_after)
        stores = EventStores(
            lookups=LookupStore(ddb, config.lookup_table_name),
            metrics=MetricsStore(faulty_ddb, config),
            archive=ArchiveStore(cast(Any, FaultyClient(s3, plan, crash_after=crash_after)),
                                 config.archive_bucket_name),
        )
        try:
            return handle(event, replace(runtime, stores=stores), now_ms=int(time.time() * 1000))
        except SimulatedCrash as crash:
            runtime.pool.shutdown(wait=False, cancel_futures=True)
            containers.runtime = None
            raise RuntimeError("the invocation crashed") from crash

    mapping = KinesisFaultyMapping(
        streams=None, stream_arn=STREAM_ARN, invoke=invoke,
        settings=MappingSettings(batch_size=batch_size, bisect_on_error=True,
                                 retry_attempts=10_000),
        on_failure=given_up.append, clock=time.time,
        faults=DeliveryFaults(random.Random(seed + 1), redeliver_rate=redeliver_rate,
                              random_batch_sizes=True, lanes=lanes),
    )
    started = time.perf_counter()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        report = mapping.deliver(SHARD, workload.records)
    return RunResult(report, dict(plan.counts), time.perf_counter() - started, len(given_up))


def read_counters(items: Iterable[Mapping[str, Any]]) -> tuple[CounterTruth, UserTruth, int]:
    """Counters, unique-user sets (shards merged) and the number of markers in a table."""
    counters: CounterTruth = {}
    users: UserTruth = defaultdict(set)
    markers = 0
    for item in items:
        if item["pk"]["S"].startswith("EVENT#"):
            markers += 1
            continue
        key = (item["experiment_id"]["S"], item["variant"]["S"], item["window"]["S"],
               item["window_start"]["S"])
        if "#USERS#" in item["sk"]["S"]:
            users[key] |= set(item["users"]["SS"])
            continue
        counters[key] = {name: Decimal(value["N"]) for name, value in item.items()
                         if re.fullmatch(r"events|[ns]_\w+", name) and "N" in value}
    return counters, dict(users), markers


def compare(workload: Workload, items: Iterable[Mapping[str, Any]],
            objects: Iterable[bytes]) -> Differences:
    counters, users, markers = read_counters(items)
    differences = Differences()
    for key in set(counters) | set(workload.counters):
        expected = {k: v for k, v in workload.counters.get(key, {}).items() if v}
        actual = {k: v for k, v in counters.get(key, {}).items() if v}
        if expected != actual:
            differences.counters[key] = (expected, actual)
    for key in set(users) | set(workload.users):
        if users.get(key, set()) != workload.users.get(key, set()):
            differences.users[key] = (len(workload.users.get(key, ())), len(users.get(key, ())))
    differences.missing_markers = max(len(workload.counted_ids) - markers, 0)
    lines: dict[str, str] = {}
    for body in objects:
        for line in gzip.decompress(body).decode().splitlines():
            parsed = json.loads(line)
            # Which copy of an event a line came from shows only in these two.
            parsed.pop("sequence_number")
            parsed.pop("arrived_at")
            normal = json.dumps(parsed, sort_keys=True)
            if lines.setdefault(parsed["event_id"], normal) != normal:
                differences.conflicting_archive_lines += 1
    differences.missing_archive = workload.counted_ids - set(lines)
    differences.unexpected_archive = set(lines) - workload.counted_ids
    return differences


class MemoryEventsDynamoDB:
    """In-memory DynamoDB for the requests the event pipeline makes, thread-safe.

    ``batch_get_item``, ``transact_write_items`` (Put with ``attribute_not_exists``,
    Update), ``update_item`` (``SET`` with ``if_not_exists``, ``ADD`` of numbers and
    string sets) and ``put_item``; anything else raises rather than guess. A contract test
    runs the same traffic here and on moto's server and compares the tables.
    """

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
        self._lock = threading.Lock()
        self.calls = 0

    def put_item(self, *, TableName: str, Item: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N803
        with self._lock:
            self.calls += 1
            self.tables[TableName][_key(Item)] = json.loads(json.dumps(Item))
        return {}

    def batch_get_item(self, *, RequestItems: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N803
        with self._lock:
            self.calls += 1
            responses = {
                table: [json.loads(json.dumps(found)) for key in request["Keys"]
                        if (found := self.tables[table].get(_key(key))) is not None]
                for table, request in RequestItems.items()}
        return {"Responses": responses, "UnprocessedKeys": {}}

    def update_item(self, **request: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            table = self.tables[request["TableName"]]
            key = _key(request["Key"])
            item = json.loads(json.dumps(table.get(key, request["Key"])))
            _update(item, request)
            table[key] = item
        return {}

    def transact_write_items(self, *, TransactItems: Sequence[Mapping[str, Any]],  # noqa: N803
                             ) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            reasons = []
            for action in TransactItems:
                (kind, request), = action.items()
                key = request["Item"] if kind == "Put" else request["Key"]
                exists = _key(key) in self.tables[request["TableName"]]
                failed = "ConditionExpression" in request and exists
                if "ConditionExpression" in request and \
                        request["ConditionExpression"] != "attribute_not_exists(#pk)":
                    raise NotImplementedError(request["ConditionExpression"])
                reasons.append({"Code": "ConditionalCheckFailed" if failed else "None"})
            if any(r["Code"] != "None" for r in reasons):
                raise ClientError(cast(Any, {
                    "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                    "CancellationReasons": reasons}), "TransactWriteItems")
            for action in TransactItems:
                (kind, request), = action.items()
                table = self.tables[request["TableName"]]
                if kind == "Put":
                    table[_key(request["Item"])] = json.loads(json.dumps(request["Item"]))
                else:
                    key = _key(request["Key"])
                    item = json.loads(json.dumps(table.get(key, request["Key"])))
                    _update(item, request)
                    table[key] = item
        return {}

    def items(self, table: str) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(json.dumps(item)) for item in self.tables[table].values()]


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    return (item["pk"]["S"], item.get("sk", {}).get("S", ""))


def _update(item: dict[str, Any], request: Mapping[str, Any]) -> None:
    names, values = request["ExpressionAttributeNames"], request["ExpressionAttributeValues"]
    match = re.fullmatch(r"SET (?P<set>.+?) ADD (?P<add>.+)", request["UpdateExpression"])
    if match is None:
        raise NotImplementedError(request["UpdateExpression"])
    for clause in re.split(r",\s*(?![^()]*\))", match.group("set")):
        target, _, source = (part.strip() for part in clause.partition("="))
        guarded = re.fullmatch(r"if_not_exists\((#\w+),\s*(:\w+)\)", source)
        if guarded is None:
            item[names[target]] = values[source]
        elif names[guarded.group(1)] not in item:
            item[names[target]] = values[guarded.group(2)]
    for clause in match.group("add").split(","):
        target, placeholder = clause.split()
        name, value = names[target], values[placeholder]
        if "N" in value:
            current = Decimal(item[name]["N"]) if name in item else Decimal(0)
            item[name] = {"N": str(current + Decimal(value["N"]))}
        else:
            item[name] = {"SS": sorted(set(item.get(name, {}).get("SS", [])) | set(value["SS"]))}


def load_lookups(ddb: Any, items: Sequence[Mapping[str, Any]]) -> None:
    for item in items:
        ddb.put_item(TableName=LOOKUP_TABLE, Item=item)


def run_seed(seed: int, events: int, **kwargs: Any) -> tuple[Workload, RunResult, Differences,
                                                              MemoryEventsDynamoDB]:
    """One seed on the in-memory stores: workload, run, comparison."""
    workload = generate_workload(seed, events)
    ddb, s3 = MemoryEventsDynamoDB(), MemoryS3()
    load_lookups(ddb, workload.lookups)
    result = run(workload, seed=seed, ddb=ddb, s3=s3, **kwargs)
    differences = compare(workload, ddb.items(METRICS_TABLE), s3.objects.values())
    return workload, result, differences, ddb


def main(argv: Sequence[str] | None = None, say: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_aws.events_harness",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="records per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--lanes", type=int, default=3, help="ParallelizationFactor")
    args = parser.parse_args(argv)
    failed = 0
    say(f"{'seed':>4} {'records':>8} {'counted':>8} {'malformed':>9} {'dup sent':>8} "
        f"{'invocations':>11} {'crashes':>7} {'throttled':>9} {'lost resp':>9} "
        f"{'seconds':>7}  result")
    for seed in args.seeds:
        workload, result, differences, _ = run_seed(seed, args.events, lanes=args.lanes)
        failed += bool(differences)
        faults = result.storage_faults
        say(f"{seed:>4} {len(workload.records):>8} {len(workload.counted_ids):>8} "
            f"{workload.malformed:>9} {workload.producer_duplicates:>8} "
            f"{result.report.invocations:>11} {faults.get('crash', 0):>7} "
            f"{faults.get('throttled', 0):>9} {faults.get('lost_response', 0):>9} "
            f"{result.seconds:>7.1f}  {'differs' if differences else 'exact'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
