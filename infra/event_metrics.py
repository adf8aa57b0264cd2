"""``EventMetricsAggregator``: a Kinesis stream of JSON events to exact per-variant counters.

The event pipeline (``aggregator.events``) as a sibling of :class:`StreamAggregator`,
built from the same parts (:mod:`infra.parts`): the Lambda asset, the KMS-encrypted
dead-letter queue as the mapping's on-failure destination, the alarm topic, the alarms
of :mod:`infra.alarms` (the pipeline emits the same ``RecordsSkipped`` and
``FailedWrites`` metrics), the archive bucket's secure defaults, checkov and cdk-nag
acknowledgements with reasons. Every built resource is a public attribute.

The function's environment is :meth:`EventMetricsConfig.to_env` with the metrics table,
lookup table and archive bucket names replaced by the actual resources' names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aggregator.events.config import ENV_NAMES, EventMetricsConfig
from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import parts
from infra.alarms import AlarmThresholds, aggregator_metrics, alarm_specs, create_alarms
from infra.buckets import SECURE_BUCKET_DEFAULTS
from infra.parts import (
    LOGGING_FORMAT,
    RUNTIME,
    S3_ACCESS_LOGS_USE_BUCKET_POLICY,
    SqsOnFailureDestination,
    acknowledge_wildcard,
    check_emails,
    check_range,
    check_seconds,
    dead_letter_queue,
    encryption_key,
    stage_lambda_asset,
    struct_kwargs,
)
from infra.stream_aggregator import archive_lifecycle_rules
from infra.suppressions import skip_checkov

HANDLER = "aggregator.events.handler.handler"
_STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")


@dataclass(frozen=True)
class EventMetricsDefaults:
    """Every default of :class:`EventMetricsAggregator`, in one place.

    ``max_record_age`` is 6 hours: the on-failure destination only receives a batch's
    metadata (shard and sequence range), so a failed batch must be re-read from the
    stream while it still holds it (24 hours by default).
    """

    batch_size: int = 100
    max_batching_window: Duration = Duration.seconds(1)
    starting_position: lambda_.StartingPosition = lambda_.StartingPosition.TRIM_HORIZON
    retry_attempts: int = 10
    max_record_age: Duration = Duration.hours(6)
    parallelization_factor: int = 1
    memory_size: int = 512
    timeout: Duration = Duration.seconds(60)
    architecture: lambda_.Architecture = lambda_.Architecture.ARM_64
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    access_logs_expiration: Duration = Duration.days(365)


DEFAULTS = EventMetricsDefaults()


class EventMetricsAggregator(Construct):
    """Consumes a Kinesis stream of JSON events into a metrics table and an S3 archive.

    Attributes:
        function: the event pipeline's Lambda function.
        event_source_mapping: the mapping from ``stream`` to ``function``.
        metrics_table: counters, unique-user sets and per-event markers.
        archive_bucket: the archive bucket, or None when archival is off.
        access_logs_bucket: the new archive bucket's server access log bucket, or None.
        dead_letter_queue: receives the metadata of batches that ran out of retries.
        encryption_key: the KMS key of the dead-letter queue and the alarm topic.
        log_group: the function's log group.
        alarm_topic: the SNS topic the alarms notify.
        alarms: the alarms by key (see :data:`infra.alarms.ALARM_KEYS`).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stream: kinesis.IStream,
        lookup_table: dynamodb.ITable,
        config: EventMetricsConfig | None = None,
        metrics_table: dynamodb.ITable | None = None,
        archive_bucket: s3.IBucket | None = None,
        archive_bucket_props: s3.BucketProps | None = None,
        batch_size: int = DEFAULTS.batch_size,
        max_batching_window: Duration = DEFAULTS.max_batching_window,
        starting_position: lambda_.StartingPosition = DEFAULTS.starting_position,
        retry_attempts: int = DEFAULTS.retry_attempts,
        max_record_age: Duration = DEFAULTS.max_record_age,
        parallelization_factor: int = DEFAULTS.parallelization_factor,
        memory_size: int = DEFAULTS.memory_size,
        timeout: Duration = DEFAULTS.timeout,
        architecture: lambda_.Architecture = DEFAULTS.architecture,
        reserved_concurrency: int | None = None,
        log_retention: logs.RetentionDays = DEFAULTS.log_retention,
        alarm_thresholds: AlarmThresholds | None = None,
        alarm_topic: sns.ITopic | None = None,
        alarm_emails: tuple[str, ...] | list[str] = (),
        alarm_name_prefix: str | None = None,
    ) -> None:
        """Args:
            stream: the Kinesis stream of events (base64 JSON, see ``docs/event-metrics.md``).
            lookup_table: experiments and assignments (key ``pk``); read only.
            config: the pipeline's settings. Default :class:`EventMetricsConfig`.
            metrics_table: an existing table with keys ``pk``/``sk`` (String) and TTL on
                ``ttl``. Default: a new one (on-demand, encrypted, point-in-time recovery,
                TTL, deletion protection, retained).
            archive_bucket / archive_bucket_props: an existing bucket, or props merged
                over the secure defaults for a new one; not both, neither with archival off.
            batch_size: 1..10000. max_batching_window: 0..300 s. starting_position:
                TRIM_HORIZON or LATEST. retry_attempts: -1..10000. max_record_age:
                60 s..7 days, and below ``config.marker_ttl_days``.
                parallelization_factor: 1..10. memory_size: 128..10240 MB. timeout:
                1..900 s. reserved_concurrency: 1..100000 or None.
            alarm_thresholds, alarm_topic, alarm_emails, alarm_name_prefix: as for
                :class:`~infra.stream_aggregator.StreamAggregator`.

        Raises:
            ValueError: a prop is out of range or props conflict; the message names it.
        """
        super().__init__(scope, construct_id)
        self.node.set_context(S3_ACCESS_LOGS_USE_BUCKET_POLICY, True)
        config = config or EventMetricsConfig()
        check_range("batch_size", batch_size, 1, 10_000)
        check_range("retry_attempts", retry_attempts, -1, 10_000)
        check_range("parallelization_factor", parallelization_factor, 1, 10)
        check_range("memory_size", memory_size, 128, 10_240)
        if reserved_concurrency is not None:
            check_range("reserved_concurrency", reserved_concurrency, 1, 100_000)
        check_seconds("max_batching_window", max_batching_window, 0, 300)
        check_seconds("max_record_age", max_record_age, 60, 604_800)
        check_seconds("timeout", timeout, 1, 900)
        if starting_position.value not in _STARTING_POSITIONS:
            raise ValueError(f"starting_position must be TRIM_HORIZON or LATEST, got "
                             f"{starting_position.value}")
        _check_marker_lifetime(config, max_record_age, stream)
        if archive_bucket is not None and archive_bucket_props is not None:
            raise ValueError("archive_bucket and archive_bucket_props are mutually exclusive: "
                             "pass an existing bucket or props for a new one, not both")
        if not config.enable_archival and (archive_bucket or archive_bucket_props):
            raise ValueError("archive_bucket/archive_bucket_props given but "
                             "config.enable_archival is false")
        check_emails(alarm_emails, alarm_topic)
        prefix = parts.alarm_name_prefix(self, alarm_name_prefix, construct_id)

        self.metrics_table: dynamodb.ITable = metrics_table or self._new_metrics_table()
        self.access_logs_bucket: s3.IBucket | None = None
        self.archive_bucket: s3.IBucket | None = None
        if config.enable_archival:
            self.archive_bucket = archive_bucket or self._new_archive_bucket(archive_bucket_props)
        self.encryption_key = encryption_key(self, "Event metrics: dead-letter queue and alarms")
        self.dead_letter_queue: sqs.Queue = dead_letter_queue(
            self, self.encryption_key,
            purpose="This queue is the dead-letter queue (on-failure destination) of the "
            "Kinesis event source mapping; it needs no DLQ of its own.")
        self.log_group = logs.LogGroup(self, "LogGroup", retention=log_retention,
                                       removal_policy=RemovalPolicy.RETAIN)
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description="Event metrics Lambda: stream read, lookups, counters, "
                        "archive puts")
        self.function = lambda_.Function(
            self, "Function", runtime=RUNTIME, architecture=architecture, handler=HANDLER,
            code=lambda_.Code.from_asset(str(stage_lambda_asset())), memory_size=memory_size,
            timeout=timeout, reserved_concurrent_executions=reserved_concurrency, role=role,
            log_group=self.log_group, logging_format=LOGGING_FORMAT,
            environment=self._environment(config, lookup_table),
            description="Counts Kinesis JSON events per experiment variant and archives them",
        )
        self._grant(stream, lookup_table, config)
        self.event_source_mapping = lambda_.EventSourceMapping(
            self, "EventSourceMapping", target=self.function,
            event_source_arn=stream.stream_arn, starting_position=starting_position,
            batch_size=batch_size, max_batching_window=max_batching_window,
            bisect_batch_on_error=True, report_batch_item_failures=True,
            retry_attempts=retry_attempts, max_record_age=max_record_age,
            parallelization_factor=parallelization_factor,
            on_failure=SqsOnFailureDestination(self.dead_letter_queue),
        )
        self.event_source_mapping.node.add_dependency(role)
        self._skip_checkov(reserved_concurrency)

        self.alarm_topic: sns.ITopic = alarm_topic or parts.alarm_topic(
            self, self.encryption_key, alarm_emails, display_name="Event metrics alarms")
        metrics = aggregator_metrics(self.function, self.dead_letter_queue)
        self.alarms: dict[str, cloudwatch.Alarm] = create_alarms(
            self, alarm_specs(metrics, alarm_thresholds or AlarmThresholds(), timeout),
            name_prefix=prefix, topic=self.alarm_topic)

    def _new_metrics_table(self) -> dynamodb.Table:
        table = dynamodb.Table(
            self, "MetricsTable",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            time_to_live_attribute="ttl",
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        skip_checkov(table, "CKV_AWS_119", "Encrypted with the AWS-managed key: the counters "
                     "hold aggregates and event ids only, and readers need no key grant.")
        return table

    def _new_archive_bucket(self, props: s3.BucketProps | None) -> s3.Bucket:
        """Secure defaults, then the caller's props over them; access logs to their own bucket."""
        kwargs: dict[str, Any] = {**SECURE_BUCKET_DEFAULTS,
                                  "lifecycle_rules": archive_lifecycle_rules()}
        user = struct_kwargs(props)
        if "server_access_logs_bucket" not in user:
            logs_bucket = s3.Bucket(
                self, "AccessLogsBucket", **SECURE_BUCKET_DEFAULTS,
                lifecycle_rules=[s3.LifecycleRule(
                    id="expire-access-logs", expiration=DEFAULTS.access_logs_expiration,
                    noncurrent_version_expiration=Duration.days(30))])
            Validations.of(logs_bucket).acknowledge(Acknowledgment(
                id="AwsSolutions-S1", reason="This is the archive bucket's server access log "
                "destination; logging it into itself would loop."))
            skip_checkov(logs_bucket, "CKV_AWS_18", "This is the archive bucket's server "
                         "access log destination; logging it into itself would loop.")
            self.access_logs_bucket = logs_bucket
            kwargs["server_access_logs_bucket"] = logs_bucket
            kwargs["server_access_logs_prefix"] = "archive-bucket/"
        kwargs.update(user)
        return s3.Bucket(self, "ArchiveBucket", **kwargs)

    def _environment(self, config: EventMetricsConfig,
                     lookup_table: dynamodb.ITable) -> dict[str, str]:
        env = config.to_env()
        env[ENV_NAMES["metrics_table_name"]] = self.metrics_table.table_name
        env[ENV_NAMES["lookup_table_name"]] = lookup_table.table_name
        env[ENV_NAMES["archive_bucket_name"]] = (
            self.archive_bucket.bucket_name if self.archive_bucket else "")
        return env

    def _grant(self, stream: kinesis.IStream, lookup_table: dynamodb.ITable,
               config: EventMetricsConfig) -> None:
        """Least privilege, inline only.

        Transactions need no action of their own: TransactWriteItems is authorised as the
        PutItem (markers) and UpdateItem (counters) it contains; BatchGetItem reads markers
        back when a cancellation gives no reasons. The lookup table is only read.
        """
        role = self.function.role
        assert role is not None  # the construct always passes its own role
        stream.grant_read(self.function)
        writes = [(self.metrics_table, ["dynamodb:PutItem", "dynamodb:UpdateItem",
                                        "dynamodb:BatchGetItem"]),
                  (lookup_table, ["dynamodb:BatchGetItem"])]
        for table, actions in writes:
            iam.Grant.add_to_principal(grantee=self.function, actions=actions,
                                       resource_arns=[table.table_arn])
            if table.encryption_key is not None:
                table.encryption_key.grant_decrypt(self.function)
        self.log_group.grant_write(self.function)
        bucket = self.archive_bucket
        if bucket is not None:
            objects = bucket.arn_for_objects(f"{config.archive_prefix}*")
            iam.Grant.add_to_principal(grantee=self.function, actions=["s3:PutObject"],
                                       resource_arns=[objects])
            acknowledge_wildcard(role, objects, "Archive object keys are derived from the "
                                 "records; puts are limited to the archive prefix.")
            if bucket.encryption_key is not None:
                bucket.encryption_key.grant_encrypt(self.function)

    def _skip_checkov(self, reserved_concurrency: int | None) -> None:
        function = self.function
        skip_checkov(function, "CKV_AWS_116", "Invoked by a Kinesis event source mapping, not "
                     "asynchronously: failed batches go to the mapping's on-failure "
                     "destination (the SQS dead-letter queue).")
        skip_checkov(function, "CKV_AWS_117", "Calls only AWS APIs (Kinesis, DynamoDB, S3) "
                     "over TLS with IAM auth; a VPC would add NAT or endpoints and no isolation.")
        skip_checkov(function, "CKV_AWS_173", "The environment holds the pipeline's "
                     "configuration only, no secrets; Lambda encrypts it at rest.")
        if reserved_concurrency is None:
            skip_checkov(function, "CKV_AWS_115", "Concurrency is bounded by the stream: "
                         "shards x parallelization_factor. A reservation below that "
                         "throttles the stream; set reserved_concurrency to cap it.")
        skip_checkov(self.log_group, "CKV_AWS_158", "Operational JSON logs without secrets; "
                     "CloudWatch Logs encrypts them at rest. A KMS key would need a key-policy "
                     "grant to the Logs service and could stop logging.")


def _check_marker_lifetime(config: EventMetricsConfig, max_record_age: Duration,
                           stream: kinesis.IStream) -> None:
    """Markers must outlive every redelivery, or an old event could be counted twice."""
    marker_seconds = config.marker_ttl_days * 86_400
    if not max_record_age.is_unresolved() and max_record_age.to_seconds() >= marker_seconds:
        raise ValueError(
            f"config.marker_ttl_days ({config.marker_ttl_days}) must exceed max_record_age "
            f"({max_record_age.to_seconds()} s): a retried record could be counted twice")
    cfn = stream.node.default_child
    hours = getattr(cfn, "retention_period_hours", None)
    if isinstance(hours, int | float) and hours * 3600 >= marker_seconds:
        raise ValueError(
            f"config.marker_ttl_days ({config.marker_ttl_days}) must exceed the stream's "
            f"retention ({hours} h): a batch replayed from the stream could be counted twice")
