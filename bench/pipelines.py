"""What the event, projection and bundler benchmarks share: clients that count their write
requests, a timed run of batches, and the figures every pipeline reports.

Each pipeline's benchmark (``bench/events.py``, ``bench/projection.py``,
``bench/bundles.py``) sends the same batches twice to moto's server in its own process
(:mod:`bench.moto_process`): through the real Lambda handler, and through a naive
baseline in its seed's style (one write per record or more, no coalescing, every call in
turn). Both pay the whole per-call cost of a real call: SigV4 signing, HTTP/1.1 over
loopback, moto answering, response parsing. moto is slower per request than AWS and adds
no network latency, so absolute times are only comparable between the two, in one run;
the CPU time of the benchmark's process per batch is the handler's own cost (signing,
sending and parsing included), whatever moto's speed.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config

from local_aws.server import client

from .fakes import CallLog
from .figures import Figure, Goal

WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem",
                    "TransactWriteItems", "PutObject", "CopyObject", "CreateMultipartUpload",
                    "UploadPart", "CompleteMultipartUpload", "DeleteObject"})
"""Every operation that writes: each request counts once, however many items it carries."""
NAIVE_SDK = Config(retries={"mode": "standard", "max_attempts": 5})
"""botocore's default settings, as a straightforward implementation would use them."""

_DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


class RequestLog(CallLog):
    """Requests that clients sent, per operation (thread-safe: the handlers' pools), and
    which of them wrote."""

    @property
    def writes(self) -> int:
        with self._lock:
            return sum(n for name, n in self.calls.items() if name in WRITES)


def counted_client(service: str, endpoint_url: str, log: RequestLog,
                   config: Config = NAIVE_SDK) -> Any:
    """A client of moto's server whose every answered request goes into ``log``."""
    made = client(service, endpoint_url, config=config)
    made.meta.events.register("after-call", lambda model, **_: log.record(model.name))
    return made


@dataclass
class Run:
    """A sequence of batches through one implementation: wall time of each, and writes."""

    records: int = 0
    batch_seconds: list[float] = field(default_factory=list)
    batch_cpu_seconds: list[float] = field(default_factory=list)
    """CPU time of this process (every thread) per batch: moto's is in its own process."""
    writes: int = 0
    failed_records: int = 0
    """Records the handler reported in ``batchItemFailures`` (for a stream: from there on)."""

    @property
    def seconds(self) -> float:
        return sum(self.batch_seconds)

    @property
    def per_second(self) -> float:
        return self.records / self.seconds

    @property
    def writes_per_record(self) -> float:
        return self.writes / self.records

    @property
    def median_batch_ms(self) -> float:
        return statistics.median(self.batch_seconds) * 1000

    @property
    def slowest_batch_ms(self) -> float:
        return max(self.batch_seconds) * 1000

    @property
    def median_batch_cpu_ms(self) -> float:
        return statistics.median(self.batch_cpu_seconds) * 1000


def timed_batches(batches: Sequence[Sequence[Any]], invoke: Callable[[list[Any]], int],
                  log: RequestLog, *, say: Callable[[str], None], label: str) -> Run:
    """Each batch through ``invoke`` (which returns the records it reported failed),
    timed on its own; the handler's logs go nowhere, as in the other benchmarks."""
    run = Run()
    before = log.writes
    for number, batch in enumerate(batches, 1):
        with contextlib.redirect_stdout(_DEVNULL):
            started, cpu = time.perf_counter(), time.process_time()
            failed = invoke(list(batch))
            run.batch_seconds.append(time.perf_counter() - started)
            run.batch_cpu_seconds.append(time.process_time() - cpu)
        run.records += len(batch)
        run.failed_records += failed
        if number % 10 == 0 or number == len(batches):
            say(f"{label}: {number}/{len(batches)} batches, {run.records:,} records, "
                f"{run.seconds:.1f} s")
    run.writes = log.writes - before
    return run


def failed_count(response: dict[str, Any], batch: Sequence[Any],
                 identifier: Callable[[Any], str], *, stream: bool = True) -> int:
    """Records a partial batch response sends back: for a stream, the first reported and
    every record after it; for a queue, the reported ones."""
    reported = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
    if not reported or not stream:
        return len(reported)
    ids = [identifier(record) for record in batch]
    return len(ids) - min(ids.index(i) for i in reported if i in ids)


def figures(prefix: str, unit: str, ours: Run, naive: Run, *,
            batch_goal: Goal | None = None) -> list[Figure]:
    """Throughput, write requests per record, the median batch's wall time and its CPU
    time in this process (the handler's own cost, moto's left out), each against the
    naive baseline of the same run."""
    return [
        Figure(f"{prefix}_throughput_over_http", ours.per_second, f"{unit}/s", None,
               ours.per_second / naive.per_second),
        Figure(f"{prefix}_write_requests_per_{unit.rstrip('s')}", ours.writes_per_record,
               f"requests/{unit.rstrip('s')}", None,
               naive.writes_per_record / ours.writes_per_record),
        Figure(f"{prefix}_batch_wall_time_over_http", ours.median_batch_ms, "ms", batch_goal,
               naive.median_batch_ms / ours.median_batch_ms),
        Figure(f"{prefix}_batch_cpu_time", ours.median_batch_cpu_ms, "ms CPU", None,
               naive.median_batch_cpu_ms / ours.median_batch_cpu_ms),
    ]
