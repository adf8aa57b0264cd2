"""The props every pipeline construct takes, defined once: function, mapping and alarm.

Each construct takes them as flat keywords, after its own sources, targets and ``config``
(``StreamAggregator(..., batch_size=500, alarm_emails=[...])``), typed by a
:class:`typing.TypedDict` here, so a type checker flags a prop a construct does not take:
a stream's retry and record-age props are not an SQS source's. At synth,
:func:`resolve` lays the given keywords over the construct's defaults (a frozen
dataclass per construct, built from the ``*Settings`` classes below) and refuses a
keyword the construct does not take, as Python would for an explicit one. The settings'
``check_*`` methods then raise ``ValueError`` naming the first prop out of range.

``function_overrides`` passes any other ``lambda_.Function`` setting through (a VPC,
layers, ...); the settings the construct owns, because the pipeline depends on
them, are refused by name.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns

from .parts import check_range, check_seconds

_STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
MAX_FILTERS = 5
"""Lambda's limit of filter criteria per event source mapping."""

OWNED_FUNCTION_SETTINGS: Mapping[str, str] = {
    "code": "the pipeline's own asset",
    "handler": "the pipeline's entry point",
    "runtime": "the runtime the handlers are written for",
    "role": "a role of the construct's own, holding only its scoped grants",
    "environment": "the validated settings the handler reads",
    "log_group": "the construct's log group",
    "logging_format": "Text, which passes the handler's JSON and EMF lines through",
    "log_format": "Text, which passes the handler's JSON and EMF lines through",
    "application_log_level": "a level filter would drop the EMF lines the alarms read",
    "application_log_level_v2": "a level filter would drop the EMF lines the alarms read",
    "system_log_level": "it needs the JSON log format, which the construct does not use",
    "system_log_level_v2": "it needs the JSON log format, which the construct does not use",
    "log_retention": "the construct's log group (use the log_retention prop)",
    "log_retention_role": "the construct's log group, not a log-retention custom resource",
    "log_retention_retry_options": "the construct's log group, not a log-retention "
    "custom resource",
    "log_removal_policy": "the construct's log group, which is retained",
}
"""``lambda_.Function`` settings a construct sets itself, with why."""
FUNCTION_SETTINGS_WITH_PROPS: Mapping[str, str] = {
    "memory_size": "memory_size",
    "timeout": "timeout",
    "architecture": "architecture",
    "reserved_concurrent_executions": "reserved_concurrency",
    "tracing": "tracing",
}
"""``lambda_.Function`` settings that are props of their own (checked, documented)."""
_FUNCTION_PARAMETERS = frozenset(
    inspect.signature(lambda_.Function.__init__).parameters) - {"self", "scope", "id"}


class FunctionProps(TypedDict, total=False):
    """The function's props: every construct takes these."""

    memory_size: int
    """MB, 128..10240."""
    timeout: Duration
    """1..900 s (an SQS-fed function: 30..900 s); the ``duration`` alarm follows it."""
    architecture: lambda_.Architecture
    reserved_concurrency: int | None
    """Reserved concurrent executions, 1..100000; None reserves none."""
    log_retention: logs.RetentionDays
    """How long the function's log group keeps its logs."""
    tracing: bool
    """True: X-Ray active tracing (``lambda_.Tracing.ACTIVE``) and the role's grant to
    send segments; False: none."""
    function_overrides: Mapping[str, Any]
    """Any other ``lambda_.Function`` keyword (``vpc``, ``layers``, ...),
    passed through; not those of :data:`OWNED_FUNCTION_SETTINGS` or
    :data:`FUNCTION_SETTINGS_WITH_PROPS`."""


class StreamMappingProps(TypedDict, total=False):
    """The props of a stream's (DynamoDB or Kinesis) event source mapping."""

    batch_size: int
    """Records per invocation, 1..10000."""
    max_batching_window: Duration
    """How long to gather a batch, 0..300 s."""
    starting_position: lambda_.StartingPosition
    """``TRIM_HORIZON`` or ``LATEST``."""
    retry_attempts: int
    """Retries of a failing batch, -1 (until the record expires)..10000."""
    max_record_age: Duration
    """Records older than this go to the DLQ, 60 s..7 days."""
    parallelization_factor: int
    """Concurrent batches per shard, 1..10."""
    filters: Sequence[Mapping[str, Any]] | None
    """The mapping's filter criteria (``lambda_.FilterCriteria.filter(...)`` results, at
    most 5); None: the construct's default, ``[]``: none."""


class QueueMappingProps(TypedDict, total=False):
    """The props of an SQS queue's event source mapping."""

    batch_size: int
    """Messages per invocation, 1..10000 (above 10 needs a batching window)."""
    max_batching_window: Duration
    """How long to gather a batch, 0..300 s."""
    max_concurrency: int | None
    """Concurrent invocations the queue may start, 2..1000."""


class AlarmProps(TypedDict, total=False):
    """Where the alarms go and what they and the dashboard are called."""

    alarm_topic: sns.ITopic | None
    """An existing topic for the alarms; None: a new, encrypted, SSL-only topic."""
    alarm_emails: Sequence[str]
    """E-mail subscriptions on the new topic; not together with ``alarm_topic``."""
    alarm_name_prefix: str | None
    """Alarm names are ``{prefix}-{key}``; None: ``{stack name}-{construct id}``."""
    dashboard_name: str | None
    """None: the alarm name prefix, with characters a dashboard name cannot hold as
    ``-``."""


class StreamPipelineProps(FunctionProps, StreamMappingProps, AlarmProps, total=False):
    """Everything a stream-fed construct takes besides its own props."""


class QueuePipelineProps(FunctionProps, QueueMappingProps, AlarmProps, total=False):
    """Everything a queue-fed construct takes besides its own props."""


@dataclass(frozen=True)
class FunctionSettings:
    """:class:`FunctionProps` with their defaults."""

    memory_size: int = 512
    timeout: Duration = Duration.seconds(60)
    architecture: lambda_.Architecture = lambda_.Architecture.ARM_64
    reserved_concurrency: int | None = None
    """Default: none (the event source bounds how many invocations run at once)."""
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    tracing: bool = False
    """Off by default: the handlers carry no X-Ray SDK (the asset bundles nothing but our
    code), so a trace holds Lambda's own segments only (invocation, overhead, init), whose
    timings the ``REPORT`` lines and the ``init-duration`` query already give for free; a
    stream or S3-notified queue passes no trace context to join. On, it costs X-Ray's
    price per recorded trace (see the README)."""
    function_overrides: Mapping[str, Any] = field(default_factory=dict)

    def check_function(self, *, min_timeout_seconds: int = 1,
                       owned: Iterable[str] = ()) -> None:
        """Raises ValueError naming the first function prop out of range; ``owned`` are
        more function settings the construct sets itself."""
        check_range("memory_size", self.memory_size, 128, 10_240)
        if self.reserved_concurrency is not None:
            check_range("reserved_concurrency", self.reserved_concurrency, 1, 100_000)
        check_seconds("timeout", self.timeout, min_timeout_seconds, 900)
        if not isinstance(self.tracing, bool):
            raise TypeError(f"tracing must be True or False, got {self.tracing!r}")
        check_overrides(self.function_overrides, owned)


def check_overrides(overrides: Mapping[str, Any], owned: Iterable[str] = ()) -> None:
    """Raises ValueError naming every key of ``function_overrides`` that is the
    construct's, has a prop of its own or is no ``lambda_.Function`` setting."""
    extra = set(owned)
    problems = []
    for key in sorted(overrides):
        if key in OWNED_FUNCTION_SETTINGS:
            problems.append(f"{key} is set by the construct ({OWNED_FUNCTION_SETTINGS[key]})")
        elif key in extra:
            problems.append(f"{key} is set by the construct")
        elif key in FUNCTION_SETTINGS_WITH_PROPS:
            problems.append(f"{key} is the prop {FUNCTION_SETTINGS_WITH_PROPS[key]}")
        elif key not in _FUNCTION_PARAMETERS:
            problems.append(f"{key} is not a lambda_.Function setting")
    if problems:
        raise ValueError("function_overrides: " + "; ".join(problems))


@dataclass(frozen=True)
class AlarmSettings:
    """:class:`AlarmProps` with their defaults."""

    alarm_topic: sns.ITopic | None = None
    alarm_emails: Sequence[str] = ()
    alarm_name_prefix: str | None = None
    dashboard_name: str | None = None


@dataclass(frozen=True)
class StreamSettings(FunctionSettings, AlarmSettings):
    """:class:`StreamPipelineProps` with their defaults.

    ``max_record_age`` is 6 hours, not the 24 hours a stream keeps records by default:
    the on-failure destination only receives a batch's *metadata* (shard and sequence
    range), so a failed batch must be re-read from the stream before it expires. Giving
    up after 6 hours leaves at least 18 hours to inspect the DLQ message and replay.
    """

    batch_size: int = 100
    max_batching_window: Duration = Duration.seconds(1)
    starting_position: lambda_.StartingPosition = lambda_.StartingPosition.TRIM_HORIZON
    retry_attempts: int = 10
    max_record_age: Duration = Duration.hours(6)
    parallelization_factor: int = 1
    filters: Sequence[Mapping[str, Any]] | None = None

    def check_stream(self, *, source: str) -> None:
        """Raises ValueError naming the first prop out of range for a ``source`` mapping."""
        check_range("batch_size", self.batch_size, 1, 10_000)
        check_range("retry_attempts", self.retry_attempts, -1, 10_000)
        check_range("parallelization_factor", self.parallelization_factor, 1, 10)
        check_seconds("max_batching_window", self.max_batching_window, 0, 300)
        check_seconds("max_record_age", self.max_record_age, 60, 604_800)
        self.check_function()
        if self.starting_position.value not in _STARTING_POSITIONS:
            raise ValueError(
                f"starting_position must be TRIM_HORIZON or LATEST for a {source}, "
                f"got {self.starting_position.value}"
            )
        if self.filters is not None:
            check_filters(self.filters)


def check_filters(filters: Sequence[Mapping[str, Any]]) -> None:
    """At most :data:`MAX_FILTERS`, each with a ``pattern`` that is a JSON object."""
    if len(filters) > MAX_FILTERS:
        raise ValueError(f"filters: at most {MAX_FILTERS} filters per mapping, "
                         f"got {len(filters)}")
    for index, criterion in enumerate(filters):
        pattern = criterion.get("pattern") if isinstance(criterion, Mapping) else None
        try:
            decoded = json.loads(pattern) if isinstance(pattern, str) else None
        except json.JSONDecodeError:
            decoded = None
        if not isinstance(decoded, dict):
            raise TypeError(f"filters[{index}] must be a lambda_.FilterCriteria.filter(...) "
                             f"result with a JSON object pattern, got {criterion!r}")


@dataclass(frozen=True)
class QueueSettings(FunctionSettings, AlarmSettings):
    """:class:`QueuePipelineProps` with their defaults."""

    batch_size: int = 100
    max_batching_window: Duration = Duration.seconds(1)
    max_concurrency: int | None = None


SettingsT = TypeVar("SettingsT", bound=FunctionSettings)


def resolve(construct: str, defaults: SettingsT, props: Mapping[str, Any],
            accepted: type) -> SettingsT:
    """``defaults`` with ``props`` laid over them; a prop not among the keys of the
    TypedDict ``accepted`` is a TypeError naming it, as for any unexpected keyword."""
    keys = set(accepted.__annotations__)
    unknown = sorted(set(props) - keys)
    if unknown:
        raise TypeError(f"{construct}() got unexpected keyword argument(s): "
                        f"{', '.join(unknown)}")
    return dataclasses.replace(defaults, **props)
