"""The Lambda bootstrap every pipeline shares: settings, logging, clients, stores and a
thread pool once per container, then one batch per invocation.

A pipeline describes only what is its own in a :class:`Pipeline` (its settings, its
package, how its stores are built from the clients, how a batch is processed with them,
its metric names); its ``handler`` module exposes ``handler``, ``build_runtime`` and
``handle`` from it. Nothing happens at import time (no environment reads, no clients), so
tests import handlers freely and a cold start pays only for what the first invocation
needs.

Every invocation gets its stores wrapped so that a write refused beyond the SDK's own
retries is tried again within the invocation, until the runtime's :class:`RetryPolicy` or
the invocation's deadline says stop (:mod:`streamagg_engine.retries`); the deadline comes
from Lambda's context. The batch's completion line and metrics count those retries.
"""

from __future__ import annotations

import contextvars
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

import boto3

from .batch import BatchOutcome, FailedRecords, run_batch
from .clients import sdk_config
from .logs import configure_logging, invocation
from .metrics import BY_FUNCTION
from .retries import Retrier, RetryPolicy, retrying_ports


class Settings(Protocol):
    """What the bootstrap reads of a pipeline's settings."""

    @property
    def max_workers(self) -> int: ...

    @property
    def log_level(self) -> str: ...


ConfigT = TypeVar("ConfigT", bound=Settings)
StoresT = TypeVar("StoresT")
P = ParamSpec("P")
T = TypeVar("T")
Process = Callable[[Sequence[Any]], BatchOutcome]
"""A batch's records in, its outcome out: ``process_batch`` with the runtime bound."""
RemainingMs = Callable[[], int]
"""Lambda's ``context.get_remaining_time_in_millis``."""
WRITE_RETRIES = "write_retries"
"""The summary field every pipeline's batch gains: refused writes tried again."""
WRITE_RETRIES_METRIC = "WriteRetries"
"""Its metric, under each pipeline's namespace beside the pipeline's own counts."""


@dataclass(frozen=True)
class Clients:
    """The SDK clients a pipeline's stores are built from."""

    dynamodb: Any
    s3: Any
    """None when the pipeline's settings need no S3 (see :attr:`Pipeline.needs_s3`)."""


@dataclass(frozen=True)
class Runtime(Generic[ConfigT, StoresT]):
    """What a container keeps between invocations."""

    config: ConfigT
    stores: StoresT
    pool: ThreadPoolExecutor
    function_name: str
    """Dimension of the batch metrics (Lambda's AWS_LAMBDA_FUNCTION_NAME)."""
    retries: RetryPolicy = RetryPolicy()
    """How a refused write is retried within an invocation."""
    clients: Clients | None = None
    """The clients the stores were built from (None when a caller built the stores itself)."""


@dataclass(frozen=True)
class Invocation:
    """What differs between two invocations of one runtime."""

    now_ms: int
    request_id: str
    """Lambda's request id; a fresh unique id when the caller has none (tools, tests)."""
    cold_start: bool


class ContextPool(ThreadPoolExecutor):
    """Runs each task in a copy of its submitter's context, so a line a worker thread
    logs carries the invocation's fields like the handler's own lines."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return super().submit(partial(contextvars.copy_context().run, fn, *args, **kwargs))


@dataclass(frozen=True)
class Pipeline(Generic[ConfigT, StoresT]):
    """One pipeline's Lambda function: what is its own; the rest is the engine's."""

    package: str
    """Its top-level package: whose logger gets the JSON handler, and its threads' name."""
    settings: Callable[[Mapping[str, str]], ConfigT]
    stores: Callable[[ConfigT, Clients], StoresT]
    process: Callable[[Runtime[ConfigT, StoresT], Invocation], Process]
    needs_s3: Callable[[ConfigT], bool]
    namespace: str
    counts: Mapping[str, str]
    dimension_sets: tuple[tuple[str, ...], ...] = BY_FUNCTION
    """EMF dimension sets; add ``()`` to publish each metric without dimensions too."""
    connections_per_worker: int = 1
    """HTTP connections per worker thread (a worker may hold a read and a write open)."""
    read_timeout: int = 10
    """Seconds; longer where a response streams an object body."""
    start: Callable[[Runtime[ConfigT, StoresT]], None] | None = None
    """Called on a container's first batch (Lambda's cold start, :class:`LambdaEntry`), inside
    its log context, before the batch: a check worth one request per container. Tools and
    tests that call :meth:`handle` themselves skip it."""

    def build_runtime(self, env: Mapping[str, str], *, dynamodb: Any = None,
                      s3: Any = None,
                      retries: RetryPolicy | None = None) -> Runtime[ConfigT, StoresT]:
        """Everything an invocation needs; clients and the retry policy may be passed in
        (tests, local runs, benchmarks)."""
        config = self.settings(env)
        configure_logging(config.log_level, self.package)
        sdk = sdk_config(config.max_workers * self.connections_per_worker,
                         env.get("AWS_EXECUTION_ENV", ""), read_timeout=self.read_timeout)
        if dynamodb is None:
            dynamodb = boto3.client("dynamodb", config=sdk)
        if s3 is None and self.needs_s3(config):
            s3 = boto3.client("s3", config=sdk)
        clients = Clients(dynamodb=dynamodb, s3=s3)
        return Runtime(
            config=config, stores=self.stores(config, clients), clients=clients,
            pool=ContextPool(max_workers=config.max_workers, thread_name_prefix=self.package),
            function_name=env.get("AWS_LAMBDA_FUNCTION_NAME", "local"),
            retries=retries or RetryPolicy())

    def handle(self, event: Mapping[str, Any], runtime: Runtime[ConfigT, StoresT], *,
               now_ms: int, request_id: str | None = None, cold_start: bool = False,
               remaining_ms: RemainingMs | None = None) -> dict[str, Any]:
        """One batch in, Lambda's partial batch response out; every line it logs names
        the invocation under Powertools' field names.

        ``remaining_ms`` bounds the retries of refused writes; without it (the redrive,
        tools, tests) the policy's default budget does.
        """
        call = Invocation(now_ms=now_ms, request_id=request_id or uuid.uuid4().hex,
                          cold_start=cold_start)
        policy = runtime.retries
        remaining_s = None if remaining_ms is None else remaining_ms() / 1000
        retrier = Retrier(policy, policy.deadline(time.monotonic(), remaining_s))
        process = self.process(replace(runtime, stores=retrying_ports(runtime.stores, retrier)),
                               call)
        with invocation(function_name=runtime.function_name,
                        function_request_id=call.request_id, cold_start=cold_start):
            if cold_start and self.start is not None:
                self.start(runtime)
            return run_batch(event, lambda records: _Retried(process(records), retrier),
                             logger=logging.getLogger(f"{self.package}.handler"),
                             namespace=self.namespace,
                             counts={**self.counts, WRITE_RETRIES_METRIC: WRITE_RETRIES},
                             function_name=runtime.function_name, now_ms=now_ms,
                             dimension_sets=self.dimension_sets)


@dataclass(frozen=True)
class _Retried:
    """A pipeline's batch outcome, its summary joined by the invocation's write retries."""

    outcome: BatchOutcome
    retrier: Retrier

    @property
    def failures(self) -> FailedRecords:
        return self.outcome.failures

    def summary(self) -> dict[str, int]:
        return {**self.outcome.summary(), WRITE_RETRIES: self.retrier.retries}


class LambdaEntry(Generic[ConfigT, StoresT]):
    """The callable Lambda invokes: the container's runtime is built by its first call,
    which is the one call that reports a cold start."""

    def __init__(self, pipeline: Pipeline[ConfigT, StoresT]) -> None:
        self.pipeline = pipeline
        self.runtime: Runtime[ConfigT, StoresT] | None = None

    def __call__(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        runtime, cold_start = self.runtime, self.runtime is None
        if runtime is None:
            runtime = self.runtime = self.pipeline.build_runtime(os.environ)
        return self.pipeline.handle(event, runtime, now_ms=int(time.time() * 1000),
                                    request_id=getattr(context, "aws_request_id", None),
                                    cold_start=cold_start,
                                    remaining_ms=getattr(context, "get_remaining_time_in_millis",
                                                         None))
