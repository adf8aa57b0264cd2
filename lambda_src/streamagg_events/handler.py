"""Lambda entry point of the event pipeline (``streamagg_events.handler.handler``).

Configuration and clients once per container, nothing at import time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import boto3

from streamagg_engine.batch import run_batch
from streamagg_engine.clients import sdk_config
from streamagg_engine.logs import configure_logging
from streamagg_engine.stores import ArchiveStore

from .config import EventMetricsConfig
from .metrics import COUNTS, NAMESPACE
from .pipeline import EventStores, process_batch
from .stores import LookupStore, MetricsStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    config: EventMetricsConfig
    stores: EventStores
    pool: ThreadPoolExecutor
    function_name: str


def build_runtime(env: Mapping[str, str], *, dynamodb: Any = None, s3: Any = None) -> Runtime:
    """Everything an invocation needs; clients may be passed in (tests, local runs)."""
    config = EventMetricsConfig.from_env(env)
    configure_logging(config.log_level, "streamagg_events")
    client_config = sdk_config(config.max_workers, env.get("AWS_EXECUTION_ENV", ""))
    if dynamodb is None:
        dynamodb = boto3.client("dynamodb", config=client_config)
    if s3 is None and config.archival_enabled:
        s3 = boto3.client("s3", config=client_config)
    stores = EventStores(
        lookups=LookupStore(dynamodb, config.lookup_table_name),
        metrics=MetricsStore(dynamodb, config),
        archive=ArchiveStore(s3, config.archive_bucket_name) if config.archival_enabled
        else None,
    )
    pool = ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="events")
    return Runtime(config=config, stores=stores, pool=pool,
                   function_name=env.get("AWS_LAMBDA_FUNCTION_NAME", "local"))


_runtime: Runtime | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Kinesis batch in, partial batch response (lowest failed sequence number) out."""
    global _runtime  # noqa: PLW0603 - one runtime per container is the point
    if _runtime is None:
        _runtime = build_runtime(os.environ)
    return handle(event, _runtime, now_ms=int(time.time() * 1000))


def handle(event: Mapping[str, Any], runtime: Runtime, *, now_ms: int) -> dict[str, Any]:
    return run_batch(
        event,
        partial(process_batch, config=runtime.config, stores=runtime.stores,
                pool=runtime.pool, now_ms=now_ms),
        logger=logger, namespace=NAMESPACE, counts=COUNTS,
        function_name=runtime.function_name, now_ms=now_ms)
