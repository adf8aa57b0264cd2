"""The bundler's exactly-once proof: real objects, their S3 events, a faulty delivery.

``upload_workload`` puts source objects into moto's S3 (a versioned and an unversioned
bucket; keys with spaces, ``+``, ``%`` and non-ASCII, so the URL-encoding of S3 events
matters) and keeps the ground truth: every object version that must end up in exactly
one bundle. ``run`` announces each object in an S3 event message and delivers the
messages through the real handler (``streamagg_bundles.handler.handle``) under:

- storage faults (:mod:`local_aws.faults`): throttled and lost-response writes, and
  invocations that crash (``SimulatedCrash``) after a random number of writes, claims
  and PUTs included;
- delivery faults (:class:`LocalQueue`, SQS's semantics): S3 announcing an object twice
  (two messages), SQS delivering one message twice (the copies may run concurrently in
  two consumers), deletions lost after success (a visibility-timeout redelivery),
  failed messages redelivered after the visibility timeout, and messages moved to the
  DLQ after ``max_receive_count`` receives and redriven, as the runbook says.

A simulated clock advances by the visibility timeout whenever only delayed messages
are left, so claim leases expire the way they do in Lambda; with several consumers
running at once a lease may even expire while its holder still runs, the worst case.
``compare`` then lists every version of every bundle and checks each ground-truth
object is in exactly one bundle, nothing else is, and no bundle key was written twice. A
tarball names its members in its manifest; seed 001's plain gzip names none, so its
members come from its bundle record in the claim table, and its content must be exactly
their bytes, concatenated in bundle order.

``python -m local_aws.bundles_harness --objects 2000 --seeds 1 2 3`` runs it bigger;
``--profile seed-001`` proves seed 001's format and write-time keys the same way.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

from local_aws import proof
from local_aws.event_source_mapping import sqs_record
from local_aws.faults import FaultPlan
from local_aws.memory import MemoryDynamoDB, table_definition
from local_aws.server import MotoServer, client
from streamagg_bundles.bundler import Stores
from streamagg_bundles.config import PROFILES, BundlerConfig
from streamagg_bundles.handler import build_runtime, handle
from streamagg_bundles.processor import TAR_SUFFIX
from streamagg_bundles.s3_events import SourceObject, object_identity
from streamagg_bundles.stores import ClaimTable, DistributionBucket, SourceObjects
from streamagg_bundles.tarball import entry, read_manifest

VERSIONED_BUCKET = "ingest-versioned"
PLAIN_BUCKET = "ingest-plain"
DISTRIBUTION_BUCKET = "distribution"
TABLE = "bundle-claims"
START = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
"""Half an hour before a day and month boundary: bundles land in several partitions."""
_KEY_WORDS = ("raw", "data file", "a+b", "100%", "zoë", "日本", "x=1&y=2", "../up")


Uploaded = SourceObject
"""One object version as S3 announced it: what the bundler reads from its event."""


def create_buckets(s3: Any, *, distribution: str = DISTRIBUTION_BUCKET,
                   sources: Sequence[str] = (VERSIONED_BUCKET, PLAIN_BUCKET)) -> None:
    for bucket in (*sources, distribution):
        s3.create_bucket(Bucket=bucket)
    for bucket in (sources[0], distribution):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def create_claim_table(ddb: Any, name: str = TABLE) -> None:
    """On moto's server or on :class:`local_aws.memory.MemoryDynamoDB` alike."""
    ddb.create_table(**table_definition(name, "pk"))


def upload_workload(s3: Any, *, seed: int, count: int, max_size: int = 64 * 1024,
                    buckets: Sequence[str] = (VERSIONED_BUCKET, PLAIN_BUCKET),
                    overwrite_share: float = 0.1) -> list[Uploaded]:
    """Put ``count`` object versions (some keys twice: two versions, two objects)."""
    rng = random.Random(seed)
    uploaded: list[Uploaded] = []
    keys: list[tuple[str, str]] = []
    for index in range(count):
        if keys and rng.random() < overwrite_share and keys[-1][0] == buckets[0]:
            bucket, key = keys[-1]  # a new version of a key: a second object to bundle
        else:
            bucket = buckets[index % len(buckets)]
            key = f"in/{rng.choice(_KEY_WORDS)}/{seed}-{index:06d}.csv"
            keys.append((bucket, key))
        body = rng.randbytes(rng.randint(0, max_size))
        response = s3.put_object(Bucket=bucket, Key=key, Body=body)
        uploaded.append(Uploaded(
            bucket=bucket, key=key, size=len(body), etag=response["ETag"].strip('"'),
            version_id=response.get("VersionId"), sequencer=f"{index:016X}",
            event_time=START + timedelta(seconds=5 * index)))
    return uploaded


def s3_event_body(objects: Sequence[Uploaded]) -> str:
    """The body S3 sends to SQS for these objects (keys URL-encoded, ``+`` for space)."""
    records = []
    for obj in objects:
        s3_object: dict[str, Any] = {"key": quote_plus(obj.key, safe="/"), "size": obj.size,
                                     "eTag": obj.etag, "sequencer": obj.sequencer}
        if obj.version_id is not None:
            s3_object["versionId"] = obj.version_id
        records.append({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": obj.event_time.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "eventName": "ObjectCreated:Put",
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "bundles",
                   "bucket": {"name": obj.bucket, "arn": f"arn:aws:s3:::{obj.bucket}"},
                   "object": s3_object},
        })
    return json.dumps({"Records": records})


TEST_EVENT_BODY = json.dumps({
    "Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-03-31T22:00:00.000Z",
    "Bucket": VERSIONED_BUCKET, "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw",
})


@dataclass
class _Message:
    message_id: str
    body: str
    receives: int = 0


@dataclass
class QueueFigures:
    sent: int = 0
    deliveries: int = 0
    duplicate_deliveries: int = 0
    lost_deletes: int = 0
    redelivered: int = 0
    moved_to_dlq: int = 0
    redriven: int = 0
    clock_jumps: int = 0


class LocalQueue:
    """An SQS standard queue with a DLQ: at-least-once, unordered, redelivery on timeout."""

    def __init__(self, rng: random.Random, *, max_receive_count: int,
                 duplicate_rate: float, lost_delete_rate: float) -> None:
        self._rng = rng
        self._max_receive_count = max_receive_count
        self._duplicate_rate = duplicate_rate
        self._lost_delete_rate = lost_delete_rate
        self._visible: list[_Message] = []
        self._in_flight: dict[str, _Message] = {}
        self._delayed: list[_Message] = []
        self.dead: list[_Message] = []
        self.figures = QueueFigures()
        self._lock = threading.Condition()
        self._ids = itertools.count(1)

    def send(self, body: str) -> None:
        with self._lock:
            self._visible.append(_Message(f"msg-{next(self._ids):06d}", body))
            self.figures.sent += 1

    def receive(self, batch_size: int, on_idle: Callable[[], None]) -> list[dict[str, Any]]:
        """Up to ``batch_size`` visible messages; empty once the queue has drained."""
        with self._lock:
            while not self._visible:
                if self._delayed and not self._in_flight:
                    self._visible, self._delayed = self._delayed, []
                    self.figures.clock_jumps += 1
                    on_idle()  # the visibility timeout passes
                elif not self._in_flight:
                    return []
                else:
                    self._lock.wait(0.05)
            self._rng.shuffle(self._visible)
            batch: list[dict[str, Any]] = []
            while self._visible and len(batch) < batch_size:
                message = self._visible.pop()
                if message.receives >= self._max_receive_count:
                    self.dead.append(message)
                    self.figures.moved_to_dlq += 1
                    continue
                message.receives += 1
                self._in_flight[message.message_id] = message
                if self._rng.random() < self._duplicate_rate:
                    self._visible.append(message)  # SQS hands out a second copy
                    self.figures.duplicate_deliveries += 1
                batch.append(sqs_record(message.message_id, message.body,
                                        receive_count=message.receives))
            self.figures.deliveries += len(batch)
            return batch

    def settle(self, batch: Sequence[dict[str, Any]], failed: set[str]) -> None:
        """Delete what succeeded (unless the delete is lost); the rest comes back later."""
        with self._lock:
            for record in batch:
                identifier = record["messageId"]
                message = self._in_flight.pop(identifier, None)
                if message is None:
                    continue  # the other copy of a duplicate delivery settled it
                copy_visible = any(m.message_id == identifier for m in self._visible)
                if identifier in failed or self._rng.random() < self._lost_delete_rate:
                    if identifier not in failed:
                        self.figures.lost_deletes += 1
                    self.figures.redelivered += 1
                    if not copy_visible:
                        self._delayed.append(message)
                elif copy_visible:
                    self._visible = [m for m in self._visible if m.message_id != identifier]
            self._lock.notify_all()

    def redrive(self) -> int:
        """``aws sqs start-message-move-task``: the DLQ back into the queue."""
        with self._lock:
            moved = len(self.dead)
            for message in self.dead:
                message.receives = 0
            self._visible.extend(self.dead)
            self.dead = []
            self.figures.redriven += moved
            return moved


"""The faulty client, transactions and conditional PUTs among its writes."""


class _SerialTransactions:
    """moto deep-copies a table during TransactWriteItems without a lock, so two at once
    can fail with a 500; DynamoDB itself has no such limit, so the harness queues them."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        with self._lock:
            return self._inner.transact_write_items(**kwargs)


@dataclass
class RunResult:
    queue: QueueFigures
    storage_faults: dict[str, int]
    invocations: int
    crashed_invocations: int
    seconds: float
    redrives: int


@dataclass
class Differences:
    missing: set[str] = field(default_factory=set)
    """Ground-truth objects in no bundle."""
    repeated: dict[str, int] = field(default_factory=dict)
    """Objects in more than one bundle (or twice in one), with their count."""
    unexpected: set[str] = field(default_factory=set)
    """Bundled objects that are not in the ground truth."""
    rewritten_keys: list[str] = field(default_factory=list)
    """Bundle keys with more than one version: a bundle written twice."""
    wrong_content: list[str] = field(default_factory=list)
    """Plain gzip bundles whose bytes are not their members' bytes, or without a record."""
    bundles: int = 0

    def __bool__(self) -> bool:
        return bool(self.missing or self.repeated or self.unexpected or self.rewritten_keys
                    or self.wrong_content)


class SimClock:
    def __init__(self) -> None:
        self._offset_ms = 0
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return int(time.time() * 1000) + self._offset_ms

    def advance(self, seconds: int) -> None:
        with self._lock:
            self._offset_ms += seconds * 1000


def run(objects: Sequence[Uploaded], *, seed: int, ddb: Any, s3: Any, config: BundlerConfig,
        throttle_rate: float = 0.02, lost_response_rate: float = 0.02, crash_rate: float = 0.15,
        s3_duplicate_rate: float = 0.1, sqs_duplicate_rate: float = 0.05,
        lost_delete_rate: float = 0.05, consumers: int = 3, batch_size: int = 10,
        max_receive_count: int = 5, visibility_timeout_seconds: int = 5400,
        malformed_messages: int = 2) -> RunResult:
    """Announce ``objects`` and deliver the messages through the handler, with faults."""
    rng = random.Random(seed)
    queue = LocalQueue(random.Random(seed + 1), max_receive_count=max_receive_count,
                       duplicate_rate=sqs_duplicate_rate, lost_delete_rate=lost_delete_rate)
    for obj in objects:
        queue.send(s3_event_body([obj]))
        if rng.random() < s3_duplicate_rate:
            queue.send(s3_event_body([obj]))  # S3 announces the object twice
    queue.send(TEST_EVENT_BODY)
    for index in range(malformed_messages):
        queue.send("{not json" if index % 2 == 0 else json.dumps({"Records": [{"x": 1}]}))
    # A bundle takes only 3 or 4 writes: crashes must come within the first few.
    plan = FaultPlan(random.Random(seed + 2), throttle_rate=throttle_rate,
                     lost_response_rate=lost_response_rate, crash_rate=crash_rate,
                     crash_window=5)
    ddb = _SerialTransactions(ddb)
    clock = SimClock()
    containers = proof.LaneContainers(
        lambda: build_runtime(config.to_env(), dynamodb=ddb, s3=s3))
    requests = itertools.count(1)

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        faulty_ddb, faulty_s3 = plan.invocation_clients(ddb, s3)
        stores = Stores(claims=ClaimTable(faulty_ddb, config.idempotency_table_name,
                                          config.idempotency_ttl_days),
                        sources=SourceObjects(s3),
                        bundles=DistributionBucket(faulty_s3, config.distribution_bucket_name))
        return containers.invoke(lambda runtime: handle(
            event, replace(runtime, stores=stores), now_ms=clock.now_ms(),
            owner=f"request-{next(requests)}"))

    def consume(lane: int) -> None:
        batch_rng = random.Random(seed * 100 + lane)
        while True:
            batch = queue.receive(batch_rng.randint(1, batch_size),
                                  lambda: clock.advance(visibility_timeout_seconds))
            if not batch:
                return
            try:
                response = invoke({"Records": batch})
            except proof.InvocationCrashError:
                queue.settle(batch, {record["messageId"] for record in batch})
                continue
            queue.settle(batch, {item["itemIdentifier"] for item in response["batchItemFailures"]})

    started = time.perf_counter()
    redrives = 0
    with proof.quiet():
        while True:
            threads = [threading.Thread(target=consume, args=(lane,), daemon=True)
                       for lane in range(consumers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if not queue.dead:
                break
            queue.redrive()
            redrives += 1
    return RunResult(queue.figures, dict(plan.counts), containers.invocations,
                     containers.crashes, time.perf_counter() - started, redrives)


def bundle_versions(s3: Any, bucket: str) -> dict[str, list[str]]:
    """Every bundle key and its version ids."""
    versions: dict[str, list[str]] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            versions.setdefault(version["Key"], []).append(version["VersionId"])
    return versions


def bundles(s3: Any, bucket: str) -> Iterator[tuple[str, list[str], dict[str, Any]]]:
    """Every tarball key, its version ids and the manifest of its latest version."""
    for key, versions in sorted(bundle_versions(s3, bucket).items()):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        yield key, versions, read_manifest(io.BytesIO(body))


def gzip_members(s3: Any, bucket: str, key: str, claims: ClaimTable) -> list[SourceObject] | None:
    """The members of plain gzip bundle ``key`` (from its record), or None when the record
    is missing or the bundle's bytes are not the members' bytes in bundle order."""
    record = claims.get(key)
    if record is None:
        return None
    body = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    sources = SourceObjects(s3)
    expected = bytearray()
    for member in record.members:
        opened = sources.open(member)
        if opened is None:
            return None
        expected += opened.body.read()
        opened.close()
    return list(record.members) if body == bytes(expected) else None


def compare(objects: Sequence[Uploaded], s3: Any, bucket: str, *,
            claims: ClaimTable | None = None) -> Differences:
    """``claims`` (the claim table) is needed for plain gzip bundles only."""
    expected = {obj.identity for obj in objects}
    seen: Counter[str] = Counter()
    differences = Differences()
    for key, versions in sorted(bundle_versions(s3, bucket).items()):
        differences.bundles += 1
        if len(versions) > 1:
            differences.rewritten_keys.append(key)
        if key.endswith(TAR_SUFFIX):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            entries = read_manifest(io.BytesIO(body))["objects"]
        else:
            members = None if claims is None else gzip_members(s3, bucket, key, claims)
            if members is None:
                differences.wrong_content.append(key)
                continue
            entries = [entry(member) for member in members]
        for found in entries:
            seen[object_identity(found["bucket"], found["key"], found["version_id"],
                                 found["etag"])] += 1
    differences.missing = expected - set(seen)
    differences.unexpected = set(seen) - expected
    differences.repeated = {identity: n for identity, n in seen.items() if n > 1}
    return differences


def harness_config(**overrides: Any) -> BundlerConfig:
    settings: dict[str, Any] = {"distribution_bucket_name": DISTRIBUTION_BUCKET,
                                "idempotency_table_name": TABLE, "bundle_prefix": "bundles/",
                                "max_bundle_input_mb": 1, "max_bundle_objects": 8}
    return BundlerConfig(**{**settings, **overrides})


COLUMNS = (proof.Column("objects", 7), proof.Column("messages", 8),
           proof.Column("deliveries", 10), proof.INVOCATIONS, proof.CRASHES, proof.THROTTLED,
           proof.LOST_RESPONSES, proof.Column("dup deliv", 9), proof.Column("redriven", 8),
           proof.Column("bundles", 7), proof.SECONDS)


def prove_seed(moto: MotoServer, seed: int, count: int, *, crash_rate: float,
               max_receive_count: int, profile: str = "default") -> proof.SeedRow:
    """One seed in its own buckets (moto: versions, conditional PUTs) and claim table (in
    memory, as the other proofs' tables), as a row of the results table."""
    s3 = client("s3", moto.endpoint_url)
    ddb: Any = MemoryDynamoDB()  # a DynamoDB client's shape, as ClaimTable takes it
    sources = (f"versioned-{seed}", f"plain-{seed}")
    create_buckets(s3, distribution=f"distribution-{seed}", sources=sources)
    create_claim_table(ddb, f"claims-{seed}")
    config = harness_config(distribution_bucket_name=f"distribution-{seed}",
                            idempotency_table_name=f"claims-{seed}", profile=profile)
    objects = upload_workload(s3, seed=seed, count=count, buckets=sources)
    result = run(objects, seed=seed, ddb=ddb, s3=s3, config=config, crash_rate=crash_rate,
                 max_receive_count=max_receive_count)
    claims = ClaimTable(ddb, config.idempotency_table_name, config.idempotency_ttl_days)
    differences = compare(objects, s3, config.distribution_bucket_name, claims=claims)
    faults, queue = result.storage_faults, result.queue
    return proof.SeedRow(
        (len(objects), queue.sent, queue.deliveries, result.invocations,
         result.crashed_invocations, faults.get("throttled", 0), faults.get("lost_response", 0),
         queue.duplicate_deliveries, queue.redriven, differences.bundles, result.seconds),
        exact=not differences)


def main(argv: Sequence[str] | None = None) -> int:
    parser = proof.parser("local_aws.bundles_harness", __doc__, size="--objects", default=300,
                          size_help="object versions per seed", seeds=[1, 2, 3])
    parser.add_argument("--crash-rate", type=float, default=0.15,
                        help="share of invocations that crash within their first writes")
    parser.add_argument("--max-receive-count", type=int, default=5,
                        help="receives before a message moves to the DLQ (then redriven)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default",
                        help="the bundler's profile (seed-001: plain gzip, write-time keys)")
    args = parser.parse_args(argv)
    with MotoServer() as moto:
        return proof.print_results(COLUMNS, args.seeds, lambda seed: prove_seed(
            moto, seed, args.objects, crash_rate=args.crash_rate,
            max_receive_count=args.max_receive_count, profile=args.profile))


if __name__ == "__main__":
    sys.exit(main())
