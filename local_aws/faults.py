"""Fault injection: what AWS and Lambda do to an aggregator on a bad day.

Storage faults (:class:`FaultyClient`, around a DynamoDB or S3 client), on every write
the pipelines make (``UpdateItem``, ``PutItem``, ``BatchWriteItem``,
``TransactWriteItems``, ``PutObject``, conditions included):

- *throttled*: the write fails before it lands (as after the SDK's own retries);
- *lost response*: the write lands, then the caller sees an error, or the SDK's retry
  re-sends it (and so meets its own earlier write);
- *unprocessed* (``BatchWriteItem`` only): some of the requests land, the response
  hands the others back as ``UnprocessedItems``;
- *crash*: the invocation dies after a random number of writes (a timeout or an
  out-of-memory kill): the container is gone, writes still queued never happen.

Delivery faults (:class:`FaultyEventSourceMapping`): batches of random size, whole
batches delivered twice, and ``ParallelizationFactor > 1``: the shard's records split into
lanes by item key (Kinesis: partition key), lanes running concurrently, so batches
interleave while every key keeps its order; and *given up*: a batch the function fails
on every attempt (after writing a random part of it) until its retries run out, sent to
the on-failure destination while the mapping goes on with newer records. Partial batch
responses, retries from the reported record and bisection after a function error come
from the mapping itself.
"""

from __future__ import annotations

import contextlib
import random
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from local_aws.event_source_mapping import LocalEventSourceMapping

_WRITES = frozenset({"update_item", "put_item", "batch_write_item", "transact_write_items",
                     "put_object"})


class SimulatedCrash(BaseException):
    """The invocation died mid-batch. A BaseException, so no ``except Exception`` eats it."""


@dataclass
class FaultPlan:
    """Rates of each storage fault; one plan is shared by every client of a run."""

    rng: random.Random
    throttle_rate: float = 0.0
    lost_response_rate: float = 0.0
    unprocessed_rate: float = 0.0
    """Chance that a ``BatchWriteItem`` hands some of its requests back unprocessed."""
    crash_rate: float = 0.0
    """Chance that an invocation crashes (after 0 to ``crash_window - 1`` of its writes)."""
    crash_window: int = 30
    """Small for a pipeline that writes little per invocation, so its crashes still land
    between its writes rather than after the last."""
    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def draw(self) -> float:
        with self._lock:
            return self.rng.random()

    def crash_after(self) -> int | None:
        """For a new invocation: after how many writes it crashes, or None."""
        with self._lock:
            if self.rng.random() >= self.crash_rate:
                return None
            return self.rng.randrange(0, self.crash_window)

    def invocation_clients(self, *clients: Any) -> tuple[Any, ...]:
        """The clients of one invocation: if it crashes, each dies after as many writes."""
        crash_after = self.crash_after()
        return tuple(FaultyClient(inner, self, crash_after=crash_after) for inner in clients)

    def count(self, fault: str) -> None:
        with self._lock:
            self.counts[fault] = self.counts.get(fault, 0) + 1


class FaultyClient:
    """A client whose writes fail as the plan says; everything else passes through."""

    def __init__(self, inner: Any, plan: FaultPlan, *, crash_after: int | None = None) -> None:
        self._inner = inner
        self._plan = plan
        self._crash_after = crash_after
        self._writes = 0
        self._dead = False
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in _WRITES:
            return attribute
        return lambda **kwargs: self._write(name, attribute, kwargs)

    def _write(self, name: str, call: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
        with self._lock:
            if not self._dead and self._crash_after is not None \
                    and self._writes >= self._crash_after:
                self._dead = True
                self._plan.count("crash")
            self._writes += 1
            if self._dead:
                raise SimulatedCrash(f"invocation died before {name}")
        plan = self._plan
        roll = plan.draw()
        operation = "".join(part.title() for part in name.split("_"))
        if roll < plan.throttle_rate:
            plan.count("throttled")
            code = "SlowDown" if name == "put_object" else "ProvisionedThroughputExceededException"
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)
        roll -= plan.throttle_rate
        if roll < plan.lost_response_rate:
            plan.count("lost_response")
            call(**kwargs)
            if plan.draw() < 0.5:
                return call(**kwargs)  # the SDK's retry meets the write that landed
            raise ClientError({"Error": {"Code": "InternalServerError",
                                         "Message": "injected: response lost"}}, operation)
        roll -= plan.lost_response_rate
        if name == "batch_write_item" and roll < plan.unprocessed_rate:
            plan.count("unprocessed")
            return self._partly(call, kwargs["RequestItems"])
        return call(**kwargs)

    def _partly(self, call: Callable[..., Any],
                request_items: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
        """Each request lands or comes back unprocessed, as under a partition's throttling."""
        done: dict[str, list[Any]] = {}
        left: dict[str, list[Any]] = {}
        for table, requests in request_items.items():
            for request in requests:
                (done if self._plan.draw() < 0.5 else left).setdefault(table, []).append(request)
        if done:
            call(RequestItems=done)
        return {"UnprocessedItems": left}


@dataclass(frozen=True)
class DeliveryFaults:
    rng: random.Random
    redeliver_rate: float = 0.0
    """Chance that a batch which succeeded is delivered again."""
    random_batch_sizes: bool = False
    lanes: int = 1
    """ParallelizationFactor: concurrent batches of one shard, by item or partition key."""
    give_up_rate: float = 0.0
    """Chance that a batch fails until its retries run out and goes to the DLQ."""


class FaultyEventSourceMapping(LocalEventSourceMapping):
    """The local mapping, plus the delivery faults above."""

    def __init__(self, *args: Any, faults: DeliveryFaults, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._faults = faults
        self._rng_lock = threading.Lock()
        self._report_lock = threading.Lock()

    def deliver_batches(self, shard_id: str, records: Sequence[dict[str, Any]]) -> None:
        count = self._faults.lanes
        if count <= 1:
            super().deliver_batches(shard_id, records)
            return
        lanes: list[list[dict[str, Any]]] = [[] for _ in range(count)]
        for record in records:
            # Lambda's rule: records of one key always share a lane.
            lanes[zlib.crc32(self._shape.order_key(record).encode()) % count].append(record)
        with ThreadPoolExecutor(count) as pool:
            for future in [pool.submit(super(FaultyEventSourceMapping, self).deliver_batches,
                                       shard_id, lane) for lane in lanes if lane]:
                future.result()

    def batches(self, records: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
        if not self._faults.random_batch_sizes:
            yield from super().batches(records)
            return
        start = 0
        while start < len(records):
            with self._rng_lock:
                size = self._faults.rng.randint(1, self._settings.batch_size)
            yield records[start:start + size]
            start += size

    def _deliver(self, shard_id: str, batch: Sequence[dict[str, Any]], retries_used: int) -> int:
        with self._rng_lock:
            give_up = self._faults.rng.random() < self._faults.give_up_rate
            landed = self._faults.rng.randint(0, len(batch))
        if not give_up:
            return super()._deliver(shard_id, batch, retries_used)
        if landed:
            # An attempt that wrote part of the batch before it failed.
            with self._report_lock:
                self.report.invocations += 1
                self.report.function_errors += 1
            with contextlib.suppress(Exception):  # the attempt fails either way
                self.invoke(batch[:landed])
        with self._report_lock:
            self._give_up(shard_id, batch, "RetryAttemptsExhausted", retries_used)
        return retries_used

    def invoke(self, batch: Sequence[dict[str, Any]]) -> Mapping[str, Any] | None:
        response = super().invoke(batch)
        with self._rng_lock:
            again = self._faults.rng.random() < self._faults.redeliver_rate
        if again and not (response or {}).get("batchItemFailures"):
            with self._report_lock:
                self.report.invocations += 1
            return super().invoke(batch)
        return response
