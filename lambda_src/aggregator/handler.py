"""Lambda entry point of the usage aggregator: ``aggregator.handler.handler``.

The engine's bootstrap (:mod:`streamagg_engine.bootstrap`) builds configuration, clients
and the thread pool once per container, on the first invocation; this module says what
is the aggregator's own: its settings, its stores and how a batch is processed.
"""

from __future__ import annotations

from functools import partial
from typing import TypeAlias

from streamagg_engine import bootstrap
from streamagg_engine.stores import ArchiveStore

from .config import AggregatorConfig
from .maintenance import BucketMaintenance
from .metrics import COUNTS, NAMESPACE
from .pipeline import Stores, process_batch
from .schema import SCHEMA_WATCH
from .stores import SnapshotStore, read_schema_version

Runtime: TypeAlias = bootstrap.Runtime[AggregatorConfig, Stores]


def _stores(config: AggregatorConfig, clients: bootstrap.Clients) -> Stores:
    return Stores(
        snapshots=SnapshotStore(clients.dynamodb, config),
        buckets=BucketMaintenance(clients.dynamodb, config.table_name)
        if config.enable_refill else None,
        archive=ArchiveStore(clients.s3, config.archive_bucket_name) if config.archival_enabled
        else None,
    )


def _process(runtime: Runtime, call: bootstrap.Invocation) -> bootstrap.Process:
    return partial(process_batch, config=runtime.config, stores=runtime.stores,
                   pool=runtime.pool, now_ms=call.now_ms)


def _start(runtime: Runtime) -> None:
    """A table already on a zae-limiter schema this profile does not know is reported on the
    container's first batch, not only when its version item next changes on the stream."""
    if runtime.clients is not None:
        SCHEMA_WATCH.start(partial(read_schema_version, runtime.clients.dynamodb,
                                   runtime.config.table_name))


PIPELINE = bootstrap.Pipeline(
    package="aggregator", settings=AggregatorConfig.from_env, stores=_stores,
    process=_process, needs_s3=lambda config: config.archival_enabled,
    namespace=NAMESPACE, counts=COUNTS, start=_start)
build_runtime = PIPELINE.build_runtime
handle = PIPELINE.handle
handler = bootstrap.LambdaEntry(PIPELINE)
"""DynamoDB Streams batch in, partial batch response out."""
