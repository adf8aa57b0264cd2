"""What every pipeline construct builds the same way around its one Lambda function.

:class:`PipelineConstruct` builds the function with its own log group and role, the
alarm topic, the alarms and the dashboard; :class:`StreamPipelineConstruct` adds the KMS
key, the dead-letter queue and the stream event source mapping (bisect on error, partial
batch responses, bounded retries and record age, the DLQ as on-failure destination) of a
DynamoDB or Kinesis stream. Their props, with the defaults, are :class:`FunctionProps`
and :class:`StreamFunctionProps`, checked before anything is built.

The parts are built in the subclass's own scope under the ids the constructs always used
(``Function``, ``LogGroup``, ``Role``, ``Key``, ``DeadLetterQueue``,
``EventSourceMapping``, ``AlarmTopic``, ``Dashboard``), so logical IDs are stable. Grants
stay in each construct: least privilege is what differs between them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from . import parts
from .alarms import AlarmSpec, PipelineMetrics, alarm_name, create_alarms
from .dashboard import create_dashboard
from .lambda_code import asset_code
from .suppressions import skip_function_checks

_STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
_STREAM_CONCURRENCY = (
    "Concurrency is bounded by the stream: shards x parallelization_factor. A reservation "
    "below that throttles the stream; set reserved_concurrency to cap it.")


@dataclass(frozen=True)
class FunctionProps:
    """The function settings every pipeline construct takes, with their defaults."""

    memory_size: int = 512
    timeout: Duration = Duration.seconds(60)
    architecture: lambda_.Architecture = lambda_.Architecture.ARM_64
    reserved_concurrency: int | None = None
    """Default: none (the event source bounds how many invocations run at once)."""
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH

    def check_function(self, *, min_timeout_seconds: int = 1) -> None:
        """Raises ValueError naming the first function prop out of range."""
        parts.check_range("memory_size", self.memory_size, 128, 10_240)
        if self.reserved_concurrency is not None:
            parts.check_range("reserved_concurrency", self.reserved_concurrency, 1, 100_000)
        parts.check_seconds("timeout", self.timeout, min_timeout_seconds, 900)


@dataclass(frozen=True)
class StreamFunctionProps(FunctionProps):
    """... and the settings of a stream's event source mapping.

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

    def check_stream(self, *, source: str) -> None:
        """Raises ValueError naming the first prop out of range for a ``source`` mapping."""
        parts.check_range("batch_size", self.batch_size, 1, 10_000)
        parts.check_range("retry_attempts", self.retry_attempts, -1, 10_000)
        parts.check_range("parallelization_factor", self.parallelization_factor, 1, 10)
        parts.check_seconds("max_batching_window", self.max_batching_window, 0, 300)
        parts.check_seconds("max_record_age", self.max_record_age, 60, 604_800)
        self.check_function()
        if self.starting_position.value not in _STARTING_POSITIONS:
            raise ValueError(
                f"starting_position must be TRIM_HORIZON or LATEST for a {source}, "
                f"got {self.starting_position.value}"
            )


@dataclass(frozen=True)
class AlarmProps:
    """A construct's alarm and dashboard props, checked before anything is built."""

    topic: sns.ITopic | None
    emails: Sequence[str]
    name_prefix: str
    dashboard_name: str


def grant_table_stream_read(table: dynamodb.ITable, function: lambda_.IFunction) -> None:
    """``grant_stream_read``, whose ``dynamodb:ListStreams`` on ``*`` is acknowledged:
    that action has no resource-level permissions, and Lambda checks for it when the
    mapping is created."""
    table.grant_stream_read(function)
    role = function.role
    assert role is not None  # every pipeline construct passes its own role
    parts.acknowledge_wildcard(role, "*", "dynamodb:ListStreams has no resource-level "
                               "permissions; Lambda checks for it when the mapping is created.")


class PipelineConstruct(Construct):
    """A construct around one pipeline function; subclasses build it with the helpers.

    Attributes:
        encryption_key: the KMS key of the dead-letter queue and of the alarm topic.
        dead_letter_queue: where what failed for good goes.
        log_group: the function's log group.
        function: the pipeline's Lambda function.
        alarm_topic: the SNS topic the alarms notify.
        alarms: the alarms by key.
        dashboard: the CloudWatch dashboard of the function, its source and its alarms.
    """

    LABEL: ClassVar[str]
    """The pipeline's name in descriptions and titles ("Stream aggregator")."""

    encryption_key: kms.Key
    dead_letter_queue: sqs.Queue
    log_group: logs.LogGroup
    function: lambda_.Function
    alarm_topic: sns.ITopic
    alarms: dict[str, cloudwatch.Alarm]
    dashboard: cloudwatch.Dashboard

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        # Access logs are delivered under a bucket policy, not an ACL: every log bucket
        # keeps ACLs disabled (BUCKET_OWNER_ENFORCED).
        self.node.set_context(parts.S3_ACCESS_LOGS_USE_BUCKET_POLICY, True)

    def _alarm_props(self, *, alarm_topic: sns.ITopic | None, alarm_emails: Sequence[str],
                     alarm_name_prefix: str | None,
                     dashboard_name: str | None) -> AlarmProps:
        """Checks the alarm props; the prefix defaults to ``{stack name}-{construct id}``,
        the dashboard's name to the prefix."""
        parts.check_emails(alarm_emails, alarm_topic)
        prefix = parts.alarm_name_prefix(self, alarm_name_prefix, self.node.id)
        return AlarmProps(topic=alarm_topic, emails=alarm_emails, name_prefix=prefix,
                          dashboard_name=parts.dashboard_name(dashboard_name, prefix))

    def _add_function(self, props: FunctionProps, *, handler: str,
                      environment: Mapping[str, str], description: str,
                      role_description: str, **function_props: Any) -> iam.Role:
        """The function with a log group and a role of its own; returns the role, which
        holds no policy yet: grants are the subclass's."""
        self.log_group = logs.LogGroup(self, "LogGroup", retention=props.log_retention,
                                       removal_policy=RemovalPolicy.RETAIN)
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=role_description)
        self.function = lambda_.Function(
            self, "Function",
            runtime=parts.RUNTIME,
            architecture=props.architecture,
            handler=handler,
            code=asset_code(handler),
            memory_size=props.memory_size,
            timeout=props.timeout,
            reserved_concurrent_executions=props.reserved_concurrency,
            role=role,
            log_group=self.log_group,
            logging_format=parts.LOGGING_FORMAT,
            environment=dict(environment),
            description=description,
            **function_props,
        )
        return role

    def _monitor(self, alarm_props: AlarmProps, specs: list[AlarmSpec],
                 metrics: PipelineMetrics) -> None:
        """The alarm topic (unless one was given), one alarm per spec, the dashboard."""
        self.alarm_topic = alarm_props.topic or parts.alarm_topic(
            self, self.encryption_key, alarm_props.emails, display_name=f"{self.LABEL} alarms")
        prefix = alarm_props.name_prefix
        self.alarms = create_alarms(self, specs, name_prefix=prefix, topic=self.alarm_topic)
        self.dashboard = create_dashboard(
            self, "Dashboard", dashboard_name=alarm_props.dashboard_name, title=self.LABEL,
            metrics=metrics, specs=specs,
            alarm_names={key: alarm_name(prefix, key) for key in self.alarms})


class StreamPipelineConstruct(PipelineConstruct):
    """A pipeline construct whose function consumes a stream through a mapping.

    Attributes (besides :class:`PipelineConstruct`'s):
        event_source_mapping: the mapping from the stream to ``function``, its
            on-failure destination ``dead_letter_queue``.
    """

    SOURCE: ClassVar[str]
    """The stream's kind, as in "a DynamoDB stream"."""

    event_source_mapping: lambda_.EventSourceMapping

    def _add_stream_function(self, props: StreamFunctionProps, *, handler: str,
                             environment: Mapping[str, str], description: str,
                             role_description: str) -> iam.Role:
        """The KMS key, the dead-letter queue and the function (see ``_add_function``)."""
        self.encryption_key = parts.encryption_key(
            self, f"{self.LABEL}: dead-letter queue and alarm topic")
        self.dead_letter_queue = parts.dead_letter_queue(
            self, self.encryption_key,
            purpose=f"This queue is the dead-letter queue (on-failure destination) of the "
            f"{self.SOURCE}'s event source mapping; it needs no DLQ of its own.")
        return self._add_function(props, handler=handler, environment=environment,
                                  description=description, role_description=role_description)

    def _map_stream(self, stream_arn: str, props: StreamFunctionProps, *,
                    filters: Sequence[Mapping[str, Any]] | None, calls: str) -> None:
        """The mapping (after the subclass's grants: the mapping adds the DLQ's), and the
        checkov findings the function does not follow; ``calls`` names the services the
        function calls."""
        self.event_source_mapping = lambda_.EventSourceMapping(
            self,
            "EventSourceMapping",
            target=self.function,
            event_source_arn=stream_arn,
            starting_position=props.starting_position,
            batch_size=props.batch_size,
            max_batching_window=props.max_batching_window,
            bisect_batch_on_error=True,
            report_batch_item_failures=True,
            retry_attempts=props.retry_attempts,
            max_record_age=props.max_record_age,
            parallelization_factor=props.parallelization_factor,
            filters=list(filters or []) or None,
            on_failure=parts.SqsOnFailureDestination(self.dead_letter_queue),
        )
        role = self.function.role
        assert role is not None  # _add_function passes its own
        # The mapping is validated against the role's permissions when it is created.
        self.event_source_mapping.node.add_dependency(role)
        skip_function_checks(
            self.function, self.log_group,
            invoked_by=f"a {self.SOURCE} event source mapping",
            on_failure="failed batches go to the mapping's on-failure destination (the SQS "
            "dead-letter queue)",
            calls=calls,
            concurrency=None if props.reserved_concurrency is not None else _STREAM_CONCURRENCY,
        )
