"""What the exactly-once proofs share: Lambda's containers, a faulty stream run, the checks
every ground truth needs and the results table their command lines print.

Each proof (:mod:`local_aws.harness`, :mod:`local_aws.events_harness`,
:mod:`local_aws.projection_harness`, :mod:`local_aws.bundles_harness`) keeps only what is
its own: the workload and its ground truth, how its pipeline's stores are wired to the
faulty clients, and how to read the results back.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from local_aws.event_source_mapping import (
    DYNAMODB_STREAMS,
    Invoke,
    MappingReport,
    MappingSettings,
    RecordShape,
)
from local_aws.faults import DeliveryFaults, FaultPlan, FaultyEventSourceMapping, SimulatedCrash


class InvocationCrashError(RuntimeError):
    """What Lambda sees of a crashed invocation: a function error, and the container gone."""


class _Container(Protocol):
    @property
    def pool(self) -> Executor: ...


RuntimeT = TypeVar("RuntimeT", bound=_Container)
RuntimeT_contra = TypeVar("RuntimeT_contra", bound=_Container, contravariant=True)
T = TypeVar("T")


class Handler(Protocol[RuntimeT_contra]):
    """A pipeline's ``handler.handle``."""

    def __call__(self, event: Mapping[str, Any], runtime: RuntimeT_contra, *,
                 now_ms: int) -> dict[str, Any]: ...


class LaneContainers(Generic[RuntimeT]):
    """One warm Lambda container per lane (thread), built at the lane's first invocation.

    A crash (:class:`SimulatedCrash`) costs the container, as a timeout does in Lambda:
    its pool takes no more work and the lane's next invocation builds a new one. With
    ``wait_on_crash`` the writes already running finish before the retry starts; without,
    they may still land while it runs (the harsher case).
    """

    def __init__(self, build: Callable[[], RuntimeT], *, wait_on_crash: bool = False) -> None:
        self._build = build
        self._wait_on_crash = wait_on_crash
        self._lanes = threading.local()
        self._lock = threading.Lock()
        self.invocations = 0
        self.crashes = 0

    def invoke(self, call: Callable[[RuntimeT], T]) -> T:
        """``call`` with this lane's runtime; a crash surfaces as :class:`InvocationCrashError`."""
        runtime: RuntimeT | None = getattr(self._lanes, "runtime", None)
        if runtime is None:
            runtime = self._lanes.runtime = self._build()
        with self._lock:
            self.invocations += 1
        try:
            return call(runtime)
        except SimulatedCrash as crash:
            runtime.pool.shutdown(wait=self._wait_on_crash, cancel_futures=True)
            self._lanes.runtime = None
            with self._lock:
                self.crashes += 1
            raise InvocationCrashError("the invocation crashed") from crash

    def handler(self, handle: Handler[RuntimeT], wire: Callable[[RuntimeT], RuntimeT]) -> Invoke:
        """What the mapping invokes: ``handle`` in the lane's container, its runtime
        ``wire``-d for this one invocation (to stores on faulty clients)."""
        return lambda event: self.invoke(
            lambda runtime: handle(event, wire(runtime), now_ms=now_ms()))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The handler's JSON logs and EMF lines would bury the results: discard them."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class StreamRun:
    """What a faulty run through a stream's event source mapping did."""

    report: MappingReport
    storage_faults: dict[str, int]
    seconds: float
    given_up: int
    """Batches the mapping sent to its on-failure destination."""
    storage_requests: int = -1
    """Requests the store answered (-1 when its client does not count them)."""
    recovered: int = 0
    """Records the recovery replayed from the given-up ranges (the redrive's job)."""
    given_up_records: int = 0


def deliver_with_faults(records: Sequence[dict[str, Any]], invoke: Invoke, *, plan: FaultPlan,
                        seed: int, redeliver_rate: float, lanes: int, batch_size: int,
                        shard_id: str, stream_arn: str, shape: RecordShape = DYNAMODB_STREAMS,
                        requests: Callable[[], int] | None = None,
                        give_up_rate: float = 0.0) -> StreamRun:
    """Deliver one shard's records through ``invoke`` as a faulty mapping would.

    Random batch sizes, redelivered batches, ``lanes`` concurrent lanes, bisection and
    retries that never run out: a correct pipeline ends with every record processed once.
    With ``give_up_rate``, that share of batches fails until its retries run out and goes
    to the DLQ while newer records go on; the recovery then replays each given-up range
    of the shard, as ``python -m redrive`` reads it back from the stream, under the same
    storage and delivery faults. ``plan`` is the storage faults ``invoke``'s clients draw
    from; ``requests`` counts the store's requests.
    """
    given_up: list[dict[str, Any]] = []

    def mapping(rate: float, rng_seed: int) -> FaultyEventSourceMapping:
        return FaultyEventSourceMapping(
            None, stream_arn, invoke,
            settings=MappingSettings(batch_size=batch_size, bisect_on_error=True,
                                     retry_attempts=10_000),
            on_failure=given_up.append, clock=time.time, shape=shape,
            faults=DeliveryFaults(random.Random(rng_seed), redeliver_rate=redeliver_rate,
                                  random_batch_sizes=True, lanes=lanes, give_up_rate=rate),
        )

    before = requests() if requests else 0
    started = time.perf_counter()
    with quiet():
        report = mapping(give_up_rate, seed + 1).deliver(shard_id, records)
        ranges = list(given_up)
        recovered = 0
        for message in sorted(ranges, key=lambda m: m[shape.batch_info]["startSequenceNumber"]):
            replay = records_in_range(records, message[shape.batch_info], shape)
            recovered += len(replay)
            mapping(0.0, seed + 2 + recovered).deliver(shard_id, replay)
    seconds = time.perf_counter() - started
    return StreamRun(report, dict(plan.counts), seconds, len(ranges),
                     requests() - before if requests else -1, recovered,
                     report.records_sent_to_dlq)


def records_in_range(records: Sequence[dict[str, Any]], info: Mapping[str, Any],
                     shape: RecordShape) -> list[dict[str, Any]]:
    """The shard's records from a DLQ message's first to its last sequence number (all of
    them: with lanes, other keys' records in between were counted and replay as duplicates).
    """
    first, last = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
    return [r for r in records if first <= int(shape.position_of(r)) <= last]


# --- ground truth checks -------------------------------------------------------------

K = TypeVar("K")
N = TypeVar("N", int, Decimal)


def counter_differences(expected: Mapping[K, Mapping[str, N]], found: Mapping[K, Mapping[str, N]]
                        ) -> dict[K, tuple[dict[str, N], dict[str, N]]]:
    """Per key, the expected and the found counters where they differ (zero = absent)."""
    differences: dict[K, tuple[dict[str, N], dict[str, N]]] = {}
    for key in set(expected) | set(found):
        want = {name: value for name, value in expected.get(key, {}).items() if value}
        got = {name: value for name, value in found.get(key, {}).items() if value}
        if want != got:
            differences[key] = (want, got)
    return differences


@dataclass
class ArchiveDifferences:
    """How a gzip JSONL archive differs from the event ids it must hold, each once."""

    missing_archive: set[str] = field(default_factory=set)
    unexpected_archive: set[str] = field(default_factory=set)
    conflicting_archive_lines: int = 0
    """Lines of an event unlike its first: two different copies archived."""

    def __bool__(self) -> bool:
        return bool(self.missing_archive or self.unexpected_archive
                    or self.conflicting_archive_lines)

    def check_archive(self, objects: Iterable[bytes], expected_ids: set[str], *,
                      varying: Sequence[str] = ()) -> None:
        """Read every object's lines; ``varying`` fields may differ between copies."""
        lines: dict[str, str] = {}
        for body in objects:
            for line in gzip.decompress(body).decode().splitlines():
                document = json.loads(line)
                for name in varying:
                    document.pop(name)
                normal = json.dumps(document, sort_keys=True)
                if lines.setdefault(document["event_id"], normal) != normal:
                    self.conflicting_archive_lines += 1
        self.missing_archive = expected_ids - set(lines)
        self.unexpected_archive = set(lines) - expected_ids


# --- the command line ----------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    title: str
    width: int
    spec: str = ""
    """Format after the width: ``.1f`` for seconds."""

    def header(self) -> str:
        return f"{self.title:>{self.width}}"

    def cell(self, value: object) -> str:
        return format(value, f">{self.width}{self.spec}")


SEED = Column("seed", 4)
INVOCATIONS = Column("invocations", 11)
CRASHES = Column("crashes", 7)
THROTTLED = Column("throttled", 9)
LOST_RESPONSES = Column("lost resp", 9)
SECONDS = Column("seconds", 7, ".1f")


@dataclass(frozen=True)
class SeedRow:
    values: Sequence[object]
    """One per column after ``seed``."""
    exact: bool
    note: str = ""
    """Printed above the row when set: what differs."""


def parser(module: str, doc: str | None, *, size: str, default: int, size_help: str,
                 seeds: Sequence[int]) -> argparse.ArgumentParser:
    """``--<size>`` per seed and ``--seeds``; a proof adds its own options."""
    made = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument(size, type=int, default=default, help=size_help)
    made.add_argument("--seeds", type=int, nargs="+", default=list(seeds))
    return made


def print_results(columns: Sequence[Column], seeds: Iterable[int],
                  prove: Callable[[int], SeedRow],
                  say: Callable[[str], None] | None = None) -> int:
    """A header, then each seed's row as soon as it is proved; 1 if any seed differs."""
    say = say or partial(print, flush=True)
    table = (SEED, *columns)
    say(" ".join(column.header() for column in table) + "  result")
    failed = 0
    for seed in seeds:
        row = prove(seed)
        if row.note:
            say(row.note)
        cells = (column.cell(value) for column, value in zip(table, (seed, *row.values),
                                                              strict=True))
        say(" ".join(cells) + f"  {'exact' if row.exact else 'differs'}")
        failed += not row.exact
    return 1 if failed else 0
