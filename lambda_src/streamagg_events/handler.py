"""Lambda entry point of the event pipeline: ``streamagg_events.handler.handler``.

The engine's bootstrap (:mod:`streamagg_engine.bootstrap`) builds configuration, clients
and the thread pool once per container; this module says what is the pipeline's own.
"""

from __future__ import annotations

from functools import partial
from typing import TypeAlias

from streamagg_engine import bootstrap
from streamagg_engine.stores import ArchiveStore

from .config import EventMetricsConfig
from .metrics import COUNTS, NAMESPACE
from .pipeline import Stores, process_batch
from .stores import LookupStore, MetricsStore

Runtime: TypeAlias = bootstrap.Runtime[EventMetricsConfig, Stores]


def _stores(config: EventMetricsConfig, clients: bootstrap.Clients) -> Stores:
    return Stores(
        lookups=LookupStore(clients.dynamodb, config.lookup_table_name),
        metrics=MetricsStore(clients.dynamodb, config),
        archive=ArchiveStore(clients.s3, config.archive_bucket_name) if config.archival_enabled
        else None,
    )


def _process(runtime: Runtime, call: bootstrap.Invocation) -> bootstrap.Process:
    return partial(process_batch, config=runtime.config, stores=runtime.stores,
                   pool=runtime.pool, now_ms=call.now_ms)


PIPELINE = bootstrap.Pipeline(
    package="streamagg_events", settings=EventMetricsConfig.from_env, stores=_stores,
    process=_process, needs_s3=lambda config: config.archival_enabled,
    namespace=NAMESPACE, counts=COUNTS)
build_runtime = PIPELINE.build_runtime
handle = PIPELINE.handle
handler = bootstrap.LambdaEntry(PIPELINE)
"""Kinesis batch in, partial batch response (lowest failed sequence number) out."""
