"""Lambda entry point of the projection: ``streamagg_projection.handler.handler``.

Configuration, client and thread pool once per container; nothing at import time.
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

from .config import ProjectionConfig
from .metrics import COUNTS, NAMESPACE
from .pipeline import BatchWriter, process_batch
from .stores import DashboardStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    config: ProjectionConfig
    store: BatchWriter
    pool: ThreadPoolExecutor
    function_name: str


def build_runtime(env: Mapping[str, str], *, dynamodb: Any = None) -> Runtime:
    """Everything an invocation needs; the client may be passed in (tests, local runs)."""
    config = ProjectionConfig.from_env(env)
    configure_logging(config.log_level, "streamagg_projection")
    if dynamodb is None:
        dynamodb = boto3.client("dynamodb", config=sdk_config(
            config.max_workers, env.get("AWS_EXECUTION_ENV", "")))
    return Runtime(
        config=config, store=DashboardStore(dynamodb, config),
        pool=ThreadPoolExecutor(max_workers=config.max_workers,
                                thread_name_prefix="projection"),
        function_name=env.get("AWS_LAMBDA_FUNCTION_NAME", "local"),
    )


_runtime: Runtime | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """DynamoDB Streams batch in, partial batch response out."""
    global _runtime  # noqa: PLW0603 - one runtime per container is the point
    if _runtime is None:
        _runtime = build_runtime(os.environ)
    return handle(event, _runtime, now_ms=int(time.time() * 1000))


def handle(event: Mapping[str, Any], runtime: Runtime, *, now_ms: int) -> dict[str, Any]:
    """``now_ms`` only stamps the metrics line: no item depends on the clock."""
    return run_batch(
        event,
        partial(process_batch, config=runtime.config, store=runtime.store, pool=runtime.pool),
        logger=logger, namespace=NAMESPACE, counts=COUNTS,
        function_name=runtime.function_name, now_ms=now_ms)
