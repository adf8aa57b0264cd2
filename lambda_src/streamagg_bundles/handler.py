"""Lambda entry point of the bundler: ``streamagg_bundles.handler.handler``.

Configuration, clients and the thread pool are built once per container, on the first
invocation (nothing at import time). Each invocation leases the bundles it claims until
``now + CLAIM_LEASE_SECONDS``; the construct sets that above the function timeout, so a
lease outlives the invocation that holds it and an expired lease means its holder is gone.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import boto3

from streamagg_engine.batch import run_batch
from streamagg_engine.clients import sdk_config
from streamagg_engine.logs import configure_logging

from .bundler import Lease, Ports
from .config import BundlerConfig
from .metrics import COUNTS, NAMESPACE
from .pipeline import process_batch
from .stores import ClaimTable, DistributionBucket, SourceObjects

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    config: BundlerConfig
    ports: Ports
    pool: ThreadPoolExecutor
    function_name: str


def build_runtime(env: Mapping[str, str], *, dynamodb: Any = None, s3: Any = None) -> Runtime:
    """Everything an invocation needs; clients may be passed in (tests, local runs)."""
    config = BundlerConfig.from_env(env)
    configure_logging(config.log_level, "streamagg_bundles")
    if dynamodb is None or s3 is None:
        client_config = sdk_config(config.max_workers * 2, env.get("AWS_EXECUTION_ENV", ""),
                                   read_timeout=30)
        dynamodb = dynamodb or boto3.client("dynamodb", config=client_config)
        s3 = s3 or boto3.client("s3", config=client_config)
    ports = Ports(
        claims=ClaimTable(dynamodb, config.idempotency_table_name, config.idempotency_ttl_days),
        sources=SourceObjects(s3),
        bundles=DistributionBucket(s3, config.distribution_bucket_name),
    )
    pool = ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="bundler")
    return Runtime(config, ports, pool, env.get("AWS_LAMBDA_FUNCTION_NAME", "local"))


_runtime: Runtime | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """SQS batch in, partial batch response (failed message ids) out."""
    global _runtime  # noqa: PLW0603 - one runtime per container is the point
    if _runtime is None:
        _runtime = build_runtime(os.environ)
    owner = getattr(context, "aws_request_id", None) or uuid.uuid4().hex
    return handle(event, _runtime, now_ms=int(time.time() * 1000), owner=owner)


def handle(event: Mapping[str, Any], runtime: Runtime, *, now_ms: int,
           owner: str) -> dict[str, Any]:
    lease = Lease(owner=owner, now_ms=now_ms,
                  until_ms=now_ms + runtime.config.claim_lease_seconds * 1000)
    return run_batch(
        event,
        partial(process_batch, config=runtime.config, ports=runtime.ports,
                pool=runtime.pool, lease=lease),
        logger=logger, namespace=NAMESPACE, counts=COUNTS,
        function_name=runtime.function_name, now_ms=now_ms)
