"""Fault injection: what AWS and Lambda do to an aggregator on a bad day.

Storage faults (:class:`FaultyClient`, around a DynamoDB or S3 client):

- *throttled*: the write fails before it lands (as after the SDK's own retries);
- *lost response*: the write lands, then the caller sees an error, or the SDK's retry
  re-sends it (and so meets its own earlier write);
- *crash*: the invocation dies after a random number of writes (a timeout or an
  out-of-memory kill): the container is gone, writes still queued never happen.

Delivery faults (:class:`FaultyEventSourceMapping`): batches of random size, whole
batches delivered twice, and ``ParallelizationFactor > 1``: the shard's records split into
lanes by item key, lanes running concurrently, so batches interleave while every item
key keeps its order. Partial batch responses, retries from the reported record and
bisection after a function error come from the mapping itself.
"""

from __future__ import annotations

import random
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from local_aws.event_source_mapping import LocalEventSourceMapping, MappingReport

_WRITES = frozenset({"update_item", "put_object", "put_item"})


class SimulatedCrash(BaseException):
    """The invocation died mid-batch. A BaseException, so no ``except Exception`` eats it."""


@dataclass
class FaultPlan:
    """Rates of each storage fault; one plan is shared by every client of a run."""

    rng: random.Random
    throttle_rate: float = 0.0
    lost_response_rate: float = 0.0
    crash_rate: float = 0.0
    """Chance that an invocation crashes (after 0-30 of its writes)."""
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
            return self.rng.randrange(0, 30)

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
        roll = self._plan.draw()
        operation = "".join(part.title() for part in name.split("_"))
        if roll < self._plan.throttle_rate:
            self._plan.count("throttled")
            code = "SlowDown" if name == "put_object" else "ProvisionedThroughputExceededException"
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)
        if roll < self._plan.throttle_rate + self._plan.lost_response_rate:
            self._plan.count("lost_response")
            call(**kwargs)
            if self._plan.draw() < 0.5:
                return call(**kwargs)  # the SDK's retry meets the write that landed
            raise ClientError({"Error": {"Code": "InternalServerError",
                                         "Message": "injected: response lost"}}, operation)
        return call(**kwargs)


@dataclass(frozen=True)
class DeliveryFaults:
    rng: random.Random
    redeliver_rate: float = 0.0
    """Chance that a batch which succeeded is delivered again."""
    random_batch_sizes: bool = False
    lanes: int = 1
    """ParallelizationFactor: concurrent batches of one shard, by item key."""


class FaultyEventSourceMapping(LocalEventSourceMapping):
    """The local mapping, plus the delivery faults above."""

    def __init__(self, *args: Any, faults: DeliveryFaults, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._faults = faults
        self._rng_lock = threading.Lock()
        self._report_lock = threading.Lock()

    def deliver(self, shard_id: str, records: Sequence[dict[str, Any]]) -> MappingReport:
        if self._faults.lanes <= 1:
            return super().deliver(shard_id, records)
        lanes: list[list[dict[str, Any]]] = [[] for _ in range(self._faults.lanes)]
        for record in records:
            lanes[_lane(record, self._faults.lanes)].append(record)
        with ThreadPoolExecutor(self._faults.lanes) as pool:
            for future in [pool.submit(super(FaultyEventSourceMapping, self).deliver,
                                       shard_id, lane) for lane in lanes if lane]:
                future.result()
        return self.report

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

    def invoke(self, batch: Sequence[dict[str, Any]]) -> Mapping[str, Any] | None:
        response = super().invoke(batch)
        with self._rng_lock:
            again = self._faults.rng.random() < self._faults.redeliver_rate
        if again and not (response or {}).get("batchItemFailures"):
            with self._report_lock:
                self.report.invocations += 1
            return super().invoke(batch)
        return response


def _lane(record: Mapping[str, Any], lanes: int) -> int:
    """Lambda's rule: records of one item key always share a lane."""
    keys = record["dynamodb"]["Keys"]
    text = "|".join(f"{k}={v}" for k, v in sorted(keys.items()))
    return zlib.crc32(text.encode()) % lanes
