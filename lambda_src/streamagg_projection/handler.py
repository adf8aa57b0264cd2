"""Lambda entry point of the projection: ``streamagg_projection.handler.handler``.

The engine's bootstrap (:mod:`streamagg_engine.bootstrap`) builds configuration, client
and the thread pool once per container; this module says what is the projection's own.
"""

from __future__ import annotations

from functools import partial
from typing import TypeAlias

from streamagg_engine import bootstrap

from .config import ProjectionConfig
from .metrics import COUNTS, NAMESPACE
from .pipeline import BatchWriter, process_batch
from .stores import DashboardStore

Runtime: TypeAlias = bootstrap.Runtime[ProjectionConfig, BatchWriter]


def _stores(config: ProjectionConfig, clients: bootstrap.Clients) -> BatchWriter:
    return DashboardStore(clients.dynamodb, config)


def _process(runtime: Runtime, _: bootstrap.Invocation) -> bootstrap.Process:
    """No item depends on the clock: ``now_ms`` only stamps the metrics line."""
    return partial(process_batch, config=runtime.config, store=runtime.stores,
                   pool=runtime.pool)


PIPELINE = bootstrap.Pipeline(
    package="streamagg_projection", settings=ProjectionConfig.from_env, stores=_stores,
    process=_process, needs_s3=lambda _: False, namespace=NAMESPACE, counts=COUNTS)
build_runtime = PIPELINE.build_runtime
handle = PIPELINE.handle
handler = bootstrap.LambdaEntry(PIPELINE)
"""DynamoDB Streams batch in, partial batch response out."""
