"""Batch wall time when every AWS call takes ``latency_s`` (10 ms in the standard run).

Ours is the real Lambda entry point, ``aggregator.handler.handle``, on a runtime built by
``build_runtime`` (its thread pool of ``max_workers``) over clients with the handler's own
settings (``clients.sdk_config``). Two kinds of client:

* :func:`ours` (the standard figures): :func:`bench.fakes.answering_client`, where botocore
  builds and serializes every request, then the client sleeps for the round trip
  (releasing the GIL, as a socket wait does) and answers 200 before signing and sending;
* :func:`ours_over_http`: every request is also signed, sent over HTTP/1.1 to
  ``bench.endpoint`` (a local server in another process that answers after the delay) and
  its response parsed: the whole per-call CPU cost of a real call.

The baseline sends its requests one after the other through answering clients with
botocore's default settings.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from aggregator.config import AggregatorConfig
from aggregator.handler import build_runtime, handle
from streamagg_engine.clients import sdk_config

from . import endpoint
from .baseline import NaiveAggregator
from .fakes import CallLog, answering_client
from .throughput import now_after

_DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


@dataclass(frozen=True)
class Timing:
    seconds: float
    calls: int
    records: int
    cpu_seconds: float
    """CPU time of the whole process (all threads) over the batch."""

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds


def ours(batch: Sequence[dict[str, Any]], *, latency_s: float, max_workers: int,
         repeat: int = 3) -> Timing:
    """Best of ``repeat`` runs of the handler over one batch."""
    log = CallLog()
    sdk = sdk_config(max_workers)
    ddb = answering_client("dynamodb", latency_s=latency_s, log=log, config=sdk)
    s3 = answering_client("s3", latency_s=latency_s, log=log, config=sdk)
    return _best(batch, ddb, s3, log, max_workers=max_workers, repeat=repeat)


def ours_over_http(batch: Sequence[dict[str, Any]], *, latency_s: float, max_workers: int,
                   repeat: int = 3) -> Timing:
    """Like :func:`ours`, but every request is signed and sent to ``bench.endpoint``."""
    log = CallLog()
    sdk = sdk_config(max_workers).merge(Config(s3={"addressing_style": "path"}))
    with endpoint.running(latency_s) as url:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        ddb: Any = session.client("dynamodb", endpoint_url=url, config=sdk)
        s3: Any = session.client("s3", endpoint_url=url, config=sdk)
        for client in (ddb, s3):
            client.meta.events.register("after-call", lambda model, **_: log.record(model.name))
        return _best(batch, ddb, s3, log, max_workers=max_workers, repeat=repeat)


def _best(batch: Sequence[dict[str, Any]], ddb: Any, s3: Any, log: CallLog, *,
          max_workers: int, repeat: int) -> Timing:
    """Each run on a container of its own: a container remembers the ranges it wrote and
    skips them when the same records come again, so a second run on one runtime would time
    a redelivery. The clients (and their per-operation caches) are shared."""
    env = AggregatorConfig(archive_bucket_name="archive", max_workers=max_workers,
                           log_level="WARNING").to_env()
    _on_fresh_runtime(env, ddb, s3, list(batch[:10]))  # warm the clients' caches
    best, cpu, calls = float("inf"), float("inf"), 0
    for _ in range(repeat):
        before = log.total()
        elapsed, used = _on_fresh_runtime(env, ddb, s3, list(batch))
        best, cpu = min(best, elapsed), min(cpu, used)
        calls = log.total() - before
    return Timing(best, calls, len(batch), cpu)


def _on_fresh_runtime(env: dict[str, str], ddb: Any, s3: Any,
                      records: list[dict[str, Any]]) -> tuple[float, float]:
    with contextlib.redirect_stdout(_DEVNULL):
        runtime = build_runtime(env, dynamodb=ddb, s3=s3)
    try:
        return _run(runtime, records)
    finally:
        runtime.pool.shutdown(wait=True)


def baseline(batch: Sequence[dict[str, Any]], *, latency_s: float) -> Timing:
    """One run of the naive baseline: plan, then every request in turn."""
    log = CallLog()
    ddb = answering_client("dynamodb", latency_s=latency_s, log=log)
    s3 = answering_client("s3", latency_s=latency_s, log=log)
    naive = NaiveAggregator()
    warm, now_ms = batch[:10], now_after(batch)
    naive.send(naive.plan(warm, now_after(warm)), now_after(warm), ddb, s3)  # warm up likewise
    before = log.total()
    started, cpu = time.perf_counter(), time.process_time()
    naive.send(naive.plan(batch, now_ms), now_ms, ddb, s3)
    return Timing(time.perf_counter() - started, log.total() - before, len(batch),
                  time.process_time() - cpu)


def _run(runtime: Any, records: list[dict[str, Any]]) -> tuple[float, float]:
    """Wall and CPU seconds of one invocation."""
    event = {"Records": records}
    with contextlib.redirect_stdout(_DEVNULL):
        started, cpu = time.perf_counter(), time.process_time()
        response = handle(event, runtime, now_ms=now_after(records))
        elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    if response["batchItemFailures"]:
        print(f"warning: the batch reported failures: {response}", file=sys.stderr)
    return elapsed, used
