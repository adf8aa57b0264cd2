"""Lambda entry point of the projection: ``streamagg_projection.handler.handler``.

The engine's bootstrap (:mod:`streamagg_engine.bootstrap`) builds configuration, client
and the thread pool once per container; this module says what is the projection's own,
including that its metric names are its profile's (:data:`.metrics.METRICS`), known only
once the settings are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeAlias

from streamagg_engine import bootstrap

from .config import DEFAULT, ProjectionConfig
from .metrics import METRICS
from .pipeline import BatchWriter, process_batch
from .stores import DashboardStore

Runtime: TypeAlias = bootstrap.Runtime[ProjectionConfig, BatchWriter]


def _stores(config: ProjectionConfig, clients: bootstrap.Clients) -> BatchWriter:
    return DashboardStore(clients.dynamodb, config)


def _process(runtime: Runtime, _: bootstrap.Invocation) -> bootstrap.Process:
    """No item depends on the clock: ``now_ms`` only stamps the metrics line."""
    return partial(process_batch, config=runtime.config, store=runtime.stores,
                   pool=runtime.pool)


@dataclass(frozen=True)
class ProfiledPipeline(bootstrap.Pipeline[ProjectionConfig, BatchWriter]):
    """A pipeline whose batch metrics take the namespace, names and dimension sets of the
    runtime's profile."""

    def handle(self, event: Mapping[str, Any], runtime: Runtime, *, now_ms: int,
               request_id: str | None = None, cold_start: bool = False,
               remaining_ms: bootstrap.RemainingMs | None = None) -> dict[str, Any]:
        names = METRICS[runtime.config.profile]
        named = replace(self, namespace=names.namespace, counts=names.counts,
                        dimension_sets=names.dimension_sets)
        return bootstrap.Pipeline.handle(named, event, runtime, now_ms=now_ms,
                                         request_id=request_id, cold_start=cold_start,
                                         remaining_ms=remaining_ms)


PIPELINE = ProfiledPipeline(
    package="streamagg_projection", settings=ProjectionConfig.from_env, stores=_stores,
    process=_process, needs_s3=lambda _: False, namespace=METRICS[DEFAULT].namespace,
    counts=METRICS[DEFAULT].counts)
build_runtime = PIPELINE.build_runtime
handle = PIPELINE.handle
handler = bootstrap.LambdaEntry(PIPELINE)
"""DynamoDB Streams batch in, partial batch response out."""
