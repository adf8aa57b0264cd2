"""Lambda entry point of the bundler: ``streamagg_bundles.handler.handler``.

The engine's bootstrap (:mod:`streamagg_engine.bootstrap`) builds configuration, clients
and the thread pool once per container. Each invocation leases the bundles it claims, in
the name of its Lambda request id, until ``now + CLAIM_LEASE_SECONDS``; the construct sets
that above the function timeout, so a lease outlives the invocation that holds it and an
expired lease means its holder is gone.
"""

from __future__ import annotations

from functools import partial
from typing import Any, TypeAlias

from streamagg_engine import bootstrap

from .bundler import Lease, Stores
from .config import BundlerConfig
from .metrics import COUNTS, NAMESPACE
from .pipeline import process_batch
from .stores import ClaimTable, DistributionBucket, SourceObjects

Runtime: TypeAlias = bootstrap.Runtime[BundlerConfig, Stores]


def _stores(config: BundlerConfig, clients: bootstrap.Clients) -> Stores:
    return Stores(
        claims=ClaimTable(clients.dynamodb, config.idempotency_table_name,
                          config.idempotency_ttl_days),
        sources=SourceObjects(clients.s3),
        bundles=DistributionBucket(clients.s3, config.distribution_bucket_name,
                                   config.service_name),
    )


def _process(runtime: Runtime, call: bootstrap.Invocation) -> bootstrap.Process:
    lease = Lease(owner=call.request_id, now_ms=call.now_ms,
                  until_ms=call.now_ms + runtime.config.claim_lease_seconds * 1000)
    return partial(process_batch, config=runtime.config, stores=runtime.stores,
                   pool=runtime.pool, lease=lease)


PIPELINE = bootstrap.Pipeline(
    package="streamagg_bundles", settings=BundlerConfig.from_env, stores=_stores,
    process=_process, needs_s3=lambda _: True, namespace=NAMESPACE, counts=COUNTS,
    connections_per_worker=2, read_timeout=30)
build_runtime = PIPELINE.build_runtime
handler = bootstrap.LambdaEntry(PIPELINE)
"""SQS batch in, partial batch response (failed message ids) out."""


def handle(event: Any, runtime: Runtime, *, now_ms: int, owner: str) -> dict[str, Any]:
    """``owner`` holds the leases this batch takes (the Lambda request id in Lambda)."""
    return PIPELINE.handle(event, runtime, now_ms=now_ms, request_id=owner)
