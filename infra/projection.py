"""``ProjectionStage``: a source table's stream projected into a read-optimised dashboard table.

The projection pipeline (:mod:`aggregator.projection`) as a sibling of
:class:`infra.StreamAggregator`, built from the same parts (:mod:`infra.parts`): the
staged ``aggregator`` asset, the KMS-encrypted dead-letter queue as the mapping's
on-failure destination, the alarm topic and alarm plumbing, checkov and cdk-nag
reasons. Every built resource is a public attribute.

The dashboard table is new unless one is passed: on-demand, point-in-time recovery,
TTL on ``expires_at``, key ``day_partition`` + ``sk`` and two sparse indexes,
``by_sentiment`` (``day_partition`` + ``sentiment_score_combined``: "today's most
positive items") and ``by_tag`` (``tag`` + ``ingested_at``). See ``docs/projection.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aggregator.metrics import DIMENSION, NAMESPACE
from aggregator.projection.config import ENV_NAMES, ProjectionConfig
from aggregator.projection.metrics import COUNTS
from aggregator.projection.transform import (
    COMBINED,
    PARTITION_KEY,
    SORT_KEY,
    TAG,
    TTL_ATTRIBUTE,
)
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import parts
from infra.alarms import (
    AggregatorMetrics,
    AlarmSpec,
    AlarmThresholds,
    aggregator_metrics,
    alarm_name,
    create_alarms,
)
from infra.dashboard import create_dashboard
from infra.suppressions import skip_checkov

HANDLER = "aggregator.projection.handler.handler"
BY_SENTIMENT = "by_sentiment"
BY_TAG = "by_tag"
ALARM_KEYS = ("errors", "duration", "iterator_age", "iterator_age_warning", "dlq_depth",
              "throttles", "skipped_records", "failed_writes")
"""The keys of :attr:`ProjectionStage.alarms`: those of :mod:`infra.alarms`, reworded."""
_GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
_GE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD


@dataclass(frozen=True)
class ProjectionDefaults:
    """Every default of :class:`ProjectionStage`, in one place.

    Batch size and batching window are the seed's (100 records, 5 s). ``max_record_age``
    is 6 hours, as for the aggregator: the DLQ only receives a batch's sequence range,
    which leaves 18 of the stream's 24 hours to replay it.
    """

    batch_size: int = 100
    max_batching_window: Duration = Duration.seconds(5)
    starting_position: lambda_.StartingPosition = lambda_.StartingPosition.TRIM_HORIZON
    retry_attempts: int = 10
    max_record_age: Duration = Duration.hours(6)
    parallelization_factor: int = 1
    memory_size: int = 512
    timeout: Duration = Duration.seconds(60)
    architecture: lambda_.Architecture = lambda_.Architecture.ARM_64
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH


DEFAULTS = ProjectionDefaults()


def default_filters(config: ProjectionConfig) -> list[dict[str, Any]]:
    """Records that can change the dashboard: a new image or an old image that is analysed.

    Filtering on the new image alone would be wrong: a MODIFY back to pending, or a
    REMOVE, must still reach the function to delete what the old image projected.
    Records whose images are both unanalysed project nothing and cost no invocation.
    """
    status = {"status": {"S": [config.analyzed_status]}}
    return [
        {"pattern": json.dumps({"eventName": ["INSERT", "MODIFY"],
                                "dynamodb": {"NewImage": status}}, separators=(",", ":"))},
        {"pattern": json.dumps({"eventName": ["MODIFY", "REMOVE"],
                                "dynamodb": {"OldImage": status}}, separators=(",", ":"))},
    ]


class ProjectionStage(Construct):
    """The projection Lambda on ``source_table``'s stream, its dashboard table and alarms.

    Attributes:
        dashboard_table: the table the projection writes (new, or the one passed).
        function: the projection Lambda.
        event_source_mapping: the stream mapping (filters, bisection, partial responses).
        dead_letter_queue: receives the metadata of batches that ran out of retries.
        encryption_key: the KMS key of the queue and of the alarm topic it creates.
        log_group: the function's log group.
        alarms: by key (:data:`ALARM_KEYS`).
        alarm_topic: the topic the alarms notify.
        dashboard: the CloudWatch dashboard (alarms, lag, DLQ, the projection's counts).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source_table: dynamodb.ITable,
        config: ProjectionConfig | None = None,
        dashboard_table: dynamodb.ITable | None = None,
        batch_size: int = DEFAULTS.batch_size,
        max_batching_window: Duration = DEFAULTS.max_batching_window,
        starting_position: lambda_.StartingPosition = DEFAULTS.starting_position,
        retry_attempts: int = DEFAULTS.retry_attempts,
        max_record_age: Duration = DEFAULTS.max_record_age,
        parallelization_factor: int = DEFAULTS.parallelization_factor,
        filters: Sequence[Mapping[str, Any]] | None = None,
        memory_size: int = DEFAULTS.memory_size,
        timeout: Duration = DEFAULTS.timeout,
        architecture: lambda_.Architecture = DEFAULTS.architecture,
        reserved_concurrency: int | None = None,
        log_retention: logs.RetentionDays = DEFAULTS.log_retention,
        alarm_thresholds: AlarmThresholds | None = None,
        alarm_topic: sns.ITopic | None = None,
        alarm_emails: Sequence[str] = (),
        alarm_name_prefix: str | None = None,
        dashboard_name: str | None = None,
    ) -> None:
        """Args:
            source_table: an existing table with a stream; for a table of this app the
                view type must be ``NEW_AND_OLD_IMAGES`` (deletions need old images).
            config: the pipeline's settings; ``dashboard_table_name`` is replaced by
                the real table's name. Default :class:`ProjectionConfig`.
            dashboard_table: an existing dashboard table (same key schema and indexes).
                Default: a new one (see the module docstring).
            batch_size: 1..10000, default 100. max_batching_window: 0..300 s, default 5 s.
            starting_position: ``TRIM_HORIZON`` (default) or ``LATEST``.
            retry_attempts: -1..10000, default 10. max_record_age: 60 s..7 days, 6 h.
            parallelization_factor: 1..10, default 1 (order per item key holds at any).
            filters: the mapping's filters; default :func:`default_filters`, ``[]`` none.
            memory_size: 128..10240 MB. timeout: 1..900 s. reserved_concurrency: >= 1.
            alarm_thresholds: the thresholds of :class:`infra.alarms.AlarmThresholds`
                these alarms use (errors, iterator age, DLQ, skipped, failed writes).
            alarm_topic / alarm_emails: an existing topic, or e-mails for a new one.
            alarm_name_prefix: alarm names are ``{prefix}-{key}``; default
                ``{stack name}-{construct_id}``.
            dashboard_name: the CloudWatch dashboard's name; default the prefix.

        Raises:
            ValueError: a prop is out of range (the message names it), both
                ``alarm_topic`` and ``alarm_emails`` were given, or the source table has
                no stream with old and new images.
        """
        super().__init__(scope, construct_id)
        parts.check_range("batch_size", batch_size, 1, 10_000)
        parts.check_range("retry_attempts", retry_attempts, -1, 10_000)
        parts.check_range("parallelization_factor", parallelization_factor, 1, 10)
        parts.check_range("memory_size", memory_size, 128, 10_240)
        if reserved_concurrency is not None:
            parts.check_range("reserved_concurrency", reserved_concurrency, 1, 100_000)
        parts.check_seconds("max_batching_window", max_batching_window, 0, 300)
        parts.check_seconds("max_record_age", max_record_age, 60, 604_800)
        parts.check_seconds("timeout", timeout, 1, 900)
        if starting_position.value not in ("TRIM_HORIZON", "LATEST"):
            raise ValueError("starting_position must be TRIM_HORIZON or LATEST for a "
                             f"DynamoDB stream, got {starting_position.value}")
        if filters is not None and len(filters) > 5:
            raise ValueError(f"filters: at most 5 filters per mapping, got {len(filters)}")
        parts.check_emails(alarm_emails, alarm_topic)
        stream_arn = parts.require_stream(source_table, prop="source_table",
                                           needs="deletions need the old images")
        config = config or ProjectionConfig()
        prefix = parts.alarm_name_prefix(self, alarm_name_prefix, construct_id)
        dashboard = parts.dashboard_name(dashboard_name, prefix)

        self.dashboard_table: dynamodb.ITable = dashboard_table or self._new_dashboard_table()
        self.encryption_key = parts.encryption_key(
            self, "Projection stage: dead-letter queue and alarm topic")
        self.dead_letter_queue: sqs.Queue = parts.dead_letter_queue(
            self, self.encryption_key,
            purpose="This queue is the dead-letter queue (on-failure destination) of the "
            "projection's stream mapping; it needs no DLQ of its own.",
        )
        self.log_group = logs.LogGroup(self, "LogGroup", retention=log_retention,
                                       removal_policy=RemovalPolicy.RETAIN)
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description="Projection Lambda: stream read, dashboard batch writes")
        environment = config.to_env()
        environment[ENV_NAMES["dashboard_table_name"]] = self.dashboard_table.table_name
        self.function = lambda_.Function(
            self, "Function",
            runtime=parts.RUNTIME,
            architecture=architecture,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(parts.stage_lambda_asset())),
            memory_size=memory_size,
            timeout=timeout,
            reserved_concurrent_executions=reserved_concurrency,
            role=role,
            log_group=self.log_group,
            logging_format=parts.LOGGING_FORMAT,
            environment=environment,
            description="Projects analysed source items into the dashboard table",
        )
        self._grant(source_table, role)
        self.event_source_mapping = lambda_.EventSourceMapping(
            self, "EventSourceMapping",
            target=self.function,
            event_source_arn=stream_arn,
            starting_position=starting_position,
            batch_size=batch_size,
            max_batching_window=max_batching_window,
            bisect_batch_on_error=True,
            report_batch_item_failures=True,
            retry_attempts=retry_attempts,
            max_record_age=max_record_age,
            parallelization_factor=parallelization_factor,
            filters=default_filters(config) if filters is None else list(filters) or None,
            on_failure=parts.SqsOnFailureDestination(self.dead_letter_queue),
        )
        self.event_source_mapping.node.add_dependency(role)
        self._skip_checkov(reserved_concurrency)

        self.alarm_topic: sns.ITopic = alarm_topic or parts.alarm_topic(
            self, self.encryption_key, alarm_emails, display_name="Projection alarms")
        metrics = self._metrics()
        specs = _alarm_specs(metrics, alarm_thresholds or AlarmThresholds(), timeout)
        self.alarms: dict[str, cloudwatch.Alarm] = create_alarms(
            self, specs, name_prefix=prefix, topic=self.alarm_topic)
        self.dashboard = create_dashboard(
            self, "Dashboard", dashboard_name=dashboard, metrics=metrics, specs=specs,
            alarm_names={key: alarm_name(prefix, key) for key in self.alarms})

    def _metrics(self) -> AggregatorMetrics:
        """Lambda's and the queue's metrics, with the projection's own EMF counts."""
        counts = {name: cloudwatch.Metric(
            namespace=NAMESPACE, metric_name=name, statistic="Sum",
            dimensions_map={DIMENSION: self.function.function_name},
            period=Duration.minutes(5)) for name in COUNTS}
        return replace(aggregator_metrics(self.function, self.dead_letter_queue),
                       counts=counts)

    def _new_dashboard_table(self) -> dynamodb.Table:
        table = dynamodb.Table(
            self, "DashboardTable",
            partition_key=_string(PARTITION_KEY),
            sort_key=_string(SORT_KEY),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.RETAIN,
        )
        table.add_global_secondary_index(
            index_name=BY_SENTIMENT, partition_key=_string(PARTITION_KEY),
            sort_key=_string(COMBINED), projection_type=dynamodb.ProjectionType.ALL)
        table.add_global_secondary_index(
            index_name=BY_TAG, partition_key=_string(TAG),
            sort_key=_string("ingested_at"), projection_type=dynamodb.ProjectionType.ALL)
        skip_checkov(table, "CKV_AWS_119", "Encrypted with the AWS-managed key: the "
                     "dashboard's readers then need no key grant, and the table holds a "
                     "rebuildable projection of the source table.")
        return table

    def _grant(self, source_table: dynamodb.ITable, role: iam.IRole) -> None:
        """Stream read on the source, BatchWriteItem on the dashboard table only.

        Not its indexes (DynamoDB maintains them), no PutItem, no reads: the projection
        never reads what it writes. ``dynamodb:ListStreams`` on ``*`` comes with
        ``grant_stream_read``: it has no resource-level permissions.
        """
        source_table.grant_stream_read(self.function)
        parts.acknowledge_wildcard(role, "*", "dynamodb:ListStreams has no resource-level "
                                   "permissions; Lambda checks for it when the mapping "
                                   "is created.")
        iam.Grant.add_to_principal(grantee=self.function, actions=["dynamodb:BatchWriteItem"],
                                   resource_arns=[self.dashboard_table.table_arn])
        if self.dashboard_table.encryption_key is not None:
            self.dashboard_table.encryption_key.grant_encrypt_decrypt(self.function)
        self.log_group.grant_write(self.function)

    def _skip_checkov(self, reserved_concurrency: int | None) -> None:
        function = self.function
        skip_checkov(function, "CKV_AWS_116", "Invoked by a DynamoDB stream event source "
                     "mapping, not asynchronously: failed batches go to the mapping's "
                     "on-failure destination (the SQS dead-letter queue).")
        skip_checkov(function, "CKV_AWS_117", "Calls only DynamoDB over TLS with IAM auth; "
                     "a VPC would add NAT or endpoints and no isolation.")
        skip_checkov(function, "CKV_AWS_173", "The environment holds the projection's "
                     "configuration only, no secrets; Lambda encrypts it at rest.")
        if reserved_concurrency is None:
            skip_checkov(function, "CKV_AWS_115", "Concurrency is bounded by the stream: "
                         "shards x parallelization_factor. Set reserved_concurrency to "
                         "cap it lower (the seed used 10).")
        skip_checkov(self.log_group, "CKV_AWS_158", "Operational JSON logs without "
                     "secrets; CloudWatch Logs encrypts them at rest. A KMS key would need "
                     "a key-policy grant to the Logs service and could stop logging.")


def _alarm_specs(metrics: AggregatorMetrics, thresholds: AlarmThresholds,
                 timeout: Duration) -> list[AlarmSpec]:
    """The alarms of :data:`ALARM_KEYS`, worded for the projection."""
    duration_ms = timeout.to_milliseconds() * thresholds.duration_percent_of_timeout / 100
    return [
        AlarmSpec("errors", metrics.error_rate, thresholds.error_rate_percent, _GT, 1,
                  "Share of projection invocations that failed (timeouts, crashes, a "
                  "broken configuration). Bad data never fails an invocation."),
        AlarmSpec("duration", metrics.duration, duration_ms, _GT, 1,
                  f"An invocation took more than {thresholds.duration_percent_of_timeout:g} "
                  "% of the function timeout: the next one may time out."),
        AlarmSpec("iterator_age", metrics.iterator_age,
                  thresholds.iterator_age.to_milliseconds(), _GT, 3,
                  "The dashboard is falling behind the source table: the newest record "
                  "of each batch was older than the limit for 3 minutes."),
        AlarmSpec("iterator_age_warning", metrics.iterator_age,
                  thresholds.iterator_age_warning.to_milliseconds(), _GT, 15,
                  "The dashboard has lagged beyond the healthy range for 15 minutes."),
        AlarmSpec("dlq_depth", metrics.dlq_depth, thresholds.dlq_depth, _GE, 1,
                  "Batches gave up after their retries or record age; the dashboard "
                  "misses their changes until they are replayed (runbook in "
                  "docs/projection.md)."),
        AlarmSpec("throttles", metrics.throttles, thresholds.throttles, _GE, 1,
                  "Projection invocations were throttled (reserved or account "
                  "concurrency): the stream waits meanwhile."),
        AlarmSpec("skipped_records", metrics.counts["RecordsSkipped"],
                  thresholds.skipped_records, _GE, 1,
                  "Analysed source items that cannot be projected were logged and "
                  "skipped (RecordsSkipped); their event ids are in the logs."),
        AlarmSpec("failed_writes", metrics.counts["FailedWrites"],
                  thresholds.failed_writes, _GE, 1,
                  "Dashboard batch writes failed or stayed unprocessed after every "
                  "retry (FailedWrites); the mapping retries those records."),
    ]


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)
