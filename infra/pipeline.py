"""What every pipeline construct builds the same way around its one Lambda function.

:class:`PipelineConstruct` builds the function with its own log group and role, the
alarm topic, the alarms and the dashboard; :class:`StreamPipelineConstruct` adds the KMS
key, the dead-letter queue and the stream event source mapping (bisect on error, partial
batch responses, bounded retries and record age, the DLQ as on-failure destination) of a
DynamoDB or Kinesis stream. Their props are :mod:`infra.props`'s, checked before
anything is built.

The parts are built in the subclass's own scope under the ids the constructs always used
(``Function``, ``LogGroup``, ``Role``, ``Key``, ``DeadLetterQueue``,
``EventSourceMapping``, ``AlarmTopic``, ``Dashboard``), so logical IDs are stable. Grants
stay in each construct: least privilege is what differs between them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from aws_cdk import RemovalPolicy
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
from .props import AlarmSettings, FunctionSettings, StreamSettings
from .suppressions import skip_function_checks

_STREAM_CONCURRENCY = (
    "Concurrency is bounded by the stream: shards x parallelization_factor. A reservation "
    "below that throttles the stream; set reserved_concurrency to cap it.")

_XRAY_WILDCARD = (
    "X-Ray's PutTraceSegments and PutTelemetryRecords, which active tracing grants, have no "
    "resource-level permissions.")


@dataclass(frozen=True)
class Monitoring:
    """A construct's alarm and dashboard props, checked, with their names resolved."""

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

    def _monitoring(self, props: AlarmSettings) -> Monitoring:
        """Checks the alarm props; the prefix defaults to ``{stack name}-{construct id}``,
        the dashboard's name to the prefix."""
        parts.check_emails(props.alarm_emails, props.alarm_topic)
        prefix = parts.alarm_name_prefix(self, props.alarm_name_prefix, self.node.id)
        return Monitoring(topic=props.alarm_topic, emails=props.alarm_emails,
                          name_prefix=prefix,
                          dashboard_name=parts.dashboard_name(props.dashboard_name, prefix))

    def _add_function(self, props: FunctionSettings, *, handler: str,
                      environment: Mapping[str, str], description: str,
                      role_description: str, **function_props: Any) -> iam.Role:
        """The function with a log group and a role of its own; returns the role, which
        holds no policy yet: grants are the subclass's. ``props.function_overrides`` (checked
        by :meth:`FunctionSettings.check_function`) come last, over the description."""
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
            tracing=lambda_.Tracing.ACTIVE if props.tracing else None,
            **{"description": description, **function_props, **props.function_overrides},
        )
        if props.tracing:
            parts.acknowledge_wildcard(role, "*", _XRAY_WILDCARD)
        return role

    def _monitor(self, alarm_props: Monitoring, specs: list[AlarmSpec],
                 metrics: PipelineMetrics) -> None:
        """The alarm topic (unless one was given), one alarm per spec, the dashboard."""
        prefix = alarm_props.name_prefix
        if alarm_props.topic is None:
            self.alarm_topic = parts.alarm_topic(
                self, self.encryption_key, alarm_props.emails,
                display_name=f"{self.LABEL} alarms", alarm_name_prefix=prefix)
        else:
            self.alarm_topic = alarm_props.topic
            parts.allow_alarms_to_publish(self.alarm_topic, prefix)
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

    def _add_stream_function(self, props: StreamSettings, *, handler: str,
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

    def _map_stream(self, stream_arn: str, props: StreamSettings, *,
                    filters: Sequence[Mapping[str, Any]], calls: str) -> None:
        """The mapping (after the subclass's grants: the mapping adds the DLQ's), and the
        checkov findings the function does not follow; ``filters`` are the construct's
        default unless ``props.filters`` is set; ``calls`` names the services the
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
            filters=list(filters if props.filters is None else props.filters) or None,
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
