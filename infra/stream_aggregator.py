"""``StreamAggregator``: a DynamoDB stream, the aggregator Lambda, its DLQ, archive and alarms.

Everything the construct builds is a public attribute (the escape hatch). Secure defaults
live in one place, :data:`DEFAULTS`; for the archive bucket they are merged in a fixed
order: what the construct requires, over what the caller passed, over the defaults.

The Lambda's environment is :meth:`AggregatorConfig.to_env` of the config the caller
passes, with the three resource names (``TABLE_NAME``, ``SNAPSHOT_TABLE_NAME``,
``ARCHIVE_BUCKET_NAME``) replaced by the names of the actual resources, so the same
validated object drives synth and the function.

Logging: the function's log format is Lambda's *Text* format, on purpose. The handler
already writes one JSON object per line to stdout (its own logs) plus one CloudWatch
embedded-metric-format (EMF) line per batch; in Text format Lambda passes both through
unchanged, so Logs Insights parses the JSON and CloudWatch extracts the EMF metrics. Lambda's
JSON format would add nothing for those lines (a Python runtime only re-formats records
of the root logger, and the package logger does not propagate to it), but its application
log-level filter treats every stdout JSON line without a ``level`` field, which is every
EMF line, as INFO: an application log level of WARN or ERROR would silently drop the
metrics the alarms read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aggregator.config import ENV_NAMES, AggregatorConfig
from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import parts
from infra.alarms import (
    AlarmThresholds,
    aggregator_metrics,
    alarm_name,
    alarm_specs,
    create_alarms,
)
from infra.archive_catalog import ArchiveCatalog
from infra.buckets import SECURE_BUCKET_DEFAULTS
from infra.dashboard import create_dashboard
from infra.filters import default_filters
from infra.log_queries import create_query_definitions
from infra.parts import (
    DLQ_RETENTION,
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
from infra.suppressions import skip_checkov

HANDLER = "aggregator.handler.handler"
_STREAM_STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")


@dataclass(frozen=True)
class StreamAggregatorDefaults:
    """Every default of :class:`StreamAggregator`, in one place.

    ``max_record_age`` is 6 hours, not the 24 hours a DynamoDB stream keeps records:
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
    memory_size: int = 512
    timeout: Duration = Duration.seconds(60)
    architecture: lambda_.Architecture = lambda_.Architecture.ARM_64
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    dlq_retention: Duration = DLQ_RETENTION
    archive_infrequent_access_after: Duration = Duration.days(90)
    """Archive objects move to S3 Standard-IA after this."""
    archive_glacier_after: Duration = Duration.days(365)
    """... and to Glacier Instant Retrieval (still readable by Athena) after this."""
    noncurrent_version_expiration: Duration = Duration.days(30)
    """Overwritten or deleted archive objects (and access logs) are kept this long."""
    access_logs_expiration: Duration = Duration.days(365)
    """Server access logs are deleted after this."""


DEFAULTS = StreamAggregatorDefaults()

def archive_lifecycle_rules() -> list[s3.LifecycleRule]:
    """The archive bucket's default lifecycle: colder storage with age, old versions go."""
    return [s3.LifecycleRule(
        id="archive-tiering",
        transitions=[
            s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                          transition_after=DEFAULTS.archive_infrequent_access_after),
            s3.Transition(storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                          transition_after=DEFAULTS.archive_glacier_after),
        ],
        noncurrent_version_expiration=DEFAULTS.noncurrent_version_expiration,
        abort_incomplete_multipart_upload_after=Duration.days(7),
    )]


class StreamAggregator(Construct):
    """Consumes a table's stream with the aggregator Lambda, watched by alarms.

    Builds the function (with its own log group and a role holding only inline,
    resource-scoped grants), a KMS key, an SQS dead-letter queue as the stream's
    on-failure destination, the event source mapping, the archive bucket (when archival
    is on and no bucket was passed), the alarms of :mod:`infra.alarms`, an SNS topic for
    them (unless one was passed) and a dashboard.

    The mapping uses no tumbling window: the aggregator keeps no state between
    invocations (windows are computed from each record's own stream time).

    Attributes:
        function: the aggregator Lambda function.
        event_source_mapping: the mapping from the table's stream to ``function``.
        dead_letter_queue: receives the metadata of batches that ran out of retries.
        archive_bucket: the archive bucket, or None when archival is off.
        archive_catalog: the archive's Glue table and Athena workgroup
            (:class:`infra.archive_catalog.ArchiveCatalog`), or None.
        access_logs_bucket: where the new archive bucket's server access logs go; None
            when the caller passed the bucket or chose the log destination.
        log_group: the function's log group.
        encryption_key: the KMS key of the dead-letter queue and of the alarm topic the
            construct creates.
        alarms: the alarms by short name (see :data:`infra.alarms.ALARM_KEYS`).
        alarm_topic: the SNS topic the alarms notify.
        dashboard: the CloudWatch dashboard.
        query_definitions: saved Logs Insights queries on ``log_group``, by key, named
            ``{alarm name prefix}/{key}`` (see :mod:`infra.log_queries`).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        config: AggregatorConfig,
        snapshot_table: dynamodb.ITable | None = None,
        archive_bucket: s3.IBucket | None = None,
        archive_bucket_props: s3.BucketProps | None = None,
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
        archive_catalog: bool | None = None,
    ) -> None:
        """Args:
            table: the source table, an existing ``ITable`` with a stream (for a table
                defined in the same app, of view type ``NEW_AND_OLD_IMAGES``; an imported
                one needs ``table_stream_arn``). Refills are written back to it.
            config: how records become snapshots and archive objects. Its
                ``table_name``, ``snapshot_table_name`` and ``archive_bucket_name`` are
                replaced in the function's environment by the actual resources' names;
                ``enable_archival`` decides whether there is an archive bucket.
            snapshot_table: where snapshot items go. Default: ``table``.
            archive_bucket: an existing bucket for the archive. Default: a new one.
            archive_bucket_props: props for the new archive bucket, merged over the
                secure defaults (block public access, SSL only, S3-managed encryption,
                ACLs disabled, versioned, retained, server access logs to a bucket of
                its own, :func:`archive_lifecycle_rules`). Not together with
                ``archive_bucket``; neither when ``config.enable_archival`` is false.
            batch_size: records per invocation, 1..10000. Default 100.
            max_batching_window: how long to gather a batch, 0..300 s. Default 1 s.
            starting_position: ``TRIM_HORIZON`` (default: everything still in the
                stream) or ``LATEST``.
            retry_attempts: retries of a failing batch, -1 (until the record expires)
                ..10000. Default 10.
            max_record_age: records older than this go to the DLQ, 60 s..7 days.
                Default 6 hours (see :class:`StreamAggregatorDefaults`).
            parallelization_factor: concurrent batches per shard, 1..10. Default 1.
            filters: the mapping's filter criteria (``lambda_.FilterCriteria.filter``
                results, at most 5). Default: :func:`infra.filters.default_filters` of
                ``config`` (only the records the configuration uses invoke the
                function); ``[]`` turns filtering off.
            memory_size: function memory in MB, 128..10240. Default 512.
            timeout: function timeout, 1..900 s. Default 60 s.
            architecture: Default ``ARM_64``.
            reserved_concurrency: reserved concurrent executions. Default: none (the
                mapping runs at most shards x ``parallelization_factor`` at once).
            log_retention: how long the function's logs are kept. Default one month.
            alarm_thresholds: when the alarms fire. Default :class:`AlarmThresholds`
                (the operations guide's critical levels).
            alarm_topic: an existing SNS topic for the alarms. Default: a new topic,
                encrypted with ``encryption_key``, SSL only.
            alarm_emails: addresses subscribed to the new topic. Default none. Not
                together with ``alarm_topic`` (subscribe to your own topic yourself).
            alarm_name_prefix: alarm names are ``{prefix}-{key}``. Default
                ``{stack name}-{construct_id}``.
            dashboard_name: Default the alarm name prefix, with characters a dashboard
                name cannot hold replaced by ``-``.
            archive_catalog: a Glue table (partition projection) and an Athena
                workgroup over the archive, named after the alarm name prefix. Default:
                on when archival is on. ``True`` with archival off is a ``ValueError``.

        Raises:
            ValueError: a prop is out of range, both archive arguments were given, an
                archive argument was given with archival off, both ``alarm_topic`` and
                ``alarm_emails`` were given, or the table has no stream (or, for a
                table defined in this app, a stream without old and new images).
        """
        super().__init__(scope, construct_id)
        # Access logs are delivered under a bucket policy, not an ACL: the log bucket
        # keeps ACLs disabled (BUCKET_OWNER_ENFORCED).
        self.node.set_context(S3_ACCESS_LOGS_USE_BUCKET_POLICY, True)
        check_range("batch_size", batch_size, 1, 10_000)
        check_range("retry_attempts", retry_attempts, -1, 10_000)
        check_range("parallelization_factor", parallelization_factor, 1, 10)
        check_range("memory_size", memory_size, 128, 10_240)
        if reserved_concurrency is not None:
            check_range("reserved_concurrency", reserved_concurrency, 1, 100_000)
        check_seconds("max_batching_window", max_batching_window, 0, 300)
        check_seconds("max_record_age", max_record_age, 60, 604_800)
        check_seconds("timeout", timeout, 1, 900)
        if starting_position.value not in _STREAM_STARTING_POSITIONS:
            raise ValueError(
                f"starting_position must be TRIM_HORIZON or LATEST for a DynamoDB stream, "
                f"got {starting_position.value}"
            )
        if archive_bucket is not None and archive_bucket_props is not None:
            raise ValueError(
                "archive_bucket and archive_bucket_props are mutually exclusive: pass an "
                "existing bucket or props for a new one, not both"
            )
        if not config.enable_archival and (archive_bucket or archive_bucket_props):
            raise ValueError(
                "archive_bucket/archive_bucket_props given but config.enable_archival is "
                "false: enable archival or drop the bucket argument"
            )
        check_emails(alarm_emails, alarm_topic)
        thresholds = alarm_thresholds or AlarmThresholds()
        stream_arn = parts.require_stream(
            table, prop="table", needs="snapshots need new images, the archive needs old ones")
        prefix = parts.alarm_name_prefix(self, alarm_name_prefix, construct_id)
        dashboard = parts.dashboard_name(dashboard_name, prefix)

        self.archive_bucket: s3.IBucket | None = None
        self.access_logs_bucket: s3.IBucket | None = None
        if config.enable_archival:
            self.archive_bucket = archive_bucket or self._new_archive_bucket(
                archive_bucket_props
            )
        self.archive_catalog = self._archive_catalog(
            archive_catalog, config, prefix, archive_bucket_props)

        self.encryption_key = encryption_key(
            self, "Stream aggregator: dead-letter queue and alarm topic")
        self.dead_letter_queue: sqs.Queue = dead_letter_queue(
            self, self.encryption_key,
            purpose="This queue is the dead-letter queue (on-failure destination) of the "
            "stream's event source mapping; it needs no DLQ of its own.",
        )
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            retention=log_retention,
            removal_policy=RemovalPolicy.RETAIN,
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Aggregator Lambda: stream read, snapshot writes, archive puts",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=architecture,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(stage_lambda_asset())),
            memory_size=memory_size,
            timeout=timeout,
            reserved_concurrent_executions=reserved_concurrency,
            role=role,
            log_group=self.log_group,
            logging_format=LOGGING_FORMAT,
            environment=self._environment(config, table, snapshot_table),
            description="Aggregates DynamoDB stream records into snapshots and an archive",
        )
        self._grant(table, snapshot_table, config)
        self.event_source_mapping = lambda_.EventSourceMapping(
            self,
            "EventSourceMapping",
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
            on_failure=SqsOnFailureDestination(self.dead_letter_queue),
        )
        # The mapping is validated against the role's permissions when it is created.
        self.event_source_mapping.node.add_dependency(role)
        self._skip_checkov(reserved_concurrency)

        self.alarm_topic: sns.ITopic = alarm_topic or parts.alarm_topic(
            self, self.encryption_key, alarm_emails, display_name="Stream aggregator alarms")
        metrics = aggregator_metrics(self.function, self.dead_letter_queue)
        specs = alarm_specs(metrics, thresholds, timeout)
        self.alarms: dict[str, cloudwatch.Alarm] = create_alarms(
            self, specs, name_prefix=prefix, topic=self.alarm_topic
        )
        self.dashboard = create_dashboard(
            self, "Dashboard", dashboard_name=dashboard, metrics=metrics, specs=specs,
            alarm_names={key: alarm_name(prefix, key) for key in self.alarms},
        )
        self.query_definitions: dict[str, logs.QueryDefinition] = create_query_definitions(
            self, log_group=self.log_group, name_prefix=prefix
        )

    def _archive_catalog(
        self, wanted: bool | None, config: AggregatorConfig, name_prefix: str,
        bucket_props: s3.BucketProps | None,
    ) -> ArchiveCatalog | None:
        """The archive's Glue table and Athena workgroup: on with archival unless refused."""
        if wanted and self.archive_bucket is None:
            raise ValueError("archive_catalog is true but config.enable_archival is false: "
                             "there is no archive to catalog")
        if self.archive_bucket is None or wanted is False:
            return None
        return ArchiveCatalog(
            self, "ArchiveCatalog", archive_bucket=self.archive_bucket,
            archive_prefix=config.archive_prefix, name_prefix=name_prefix,
            server_access_logs_bucket=self.access_logs_bucket
            or getattr(bucket_props, "server_access_logs_bucket", None),
        )

    def _new_archive_bucket(self, props: s3.BucketProps | None) -> s3.Bucket:
        """Secure defaults, then the caller's props over them (overrides are allowed).

        Unless the caller chose an access-log destination, server access logs go to a
        bucket of their own (as AWS Solutions Constructs do by default).
        """
        kwargs: dict[str, Any] = {
            **SECURE_BUCKET_DEFAULTS,
            "lifecycle_rules": archive_lifecycle_rules(),
        }
        user = struct_kwargs(props)
        if "server_access_logs_bucket" not in user:
            logs_bucket = s3.Bucket(
                self,
                "AccessLogsBucket",
                **SECURE_BUCKET_DEFAULTS,
                lifecycle_rules=[s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=DEFAULTS.access_logs_expiration,
                    noncurrent_version_expiration=DEFAULTS.noncurrent_version_expiration,
                )],
            )
            Validations.of(logs_bucket).acknowledge(Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the archive bucket's server access log destination; "
                "logging it into itself would loop.",
            ))
            self.access_logs_bucket = logs_bucket
            kwargs["server_access_logs_bucket"] = logs_bucket
            kwargs["server_access_logs_prefix"] = "archive-bucket/"
        kwargs.update(user)
        return s3.Bucket(self, "ArchiveBucket", **kwargs)

    def _environment(
        self,
        config: AggregatorConfig,
        table: dynamodb.ITable,
        snapshot_table: dynamodb.ITable | None,
    ) -> dict[str, str]:
        env = config.to_env()
        env[ENV_NAMES["table_name"]] = table.table_name
        env[ENV_NAMES["snapshot_table_name"]] = (snapshot_table or table).table_name
        env[ENV_NAMES["archive_bucket_name"]] = (
            self.archive_bucket.bucket_name if self.archive_bucket else ""
        )
        return env

    def _grant(
        self,
        table: dynamodb.ITable,
        snapshot_table: dynamodb.ITable | None,
        config: AggregatorConfig,
    ) -> None:
        """Least privilege, inline only.

        ``grant_stream_read`` includes ``dynamodb:ListStreams`` on ``*``: that action has
        no resource-level permissions, and Lambda checks for it when the mapping is
        created. Every other DynamoDB action is scoped to one table and its stream, and
        only the items' table, not its indexes (items are read and written by key):
        ``GetItem``/``UpdateItem`` on the snapshot table, ``UpdateItem`` on the source
        table for refills (none when refill is off).
        """
        role = self.function.role
        assert role is not None  # the construct always passes its own role
        table.grant_stream_read(self.function)
        acknowledge_wildcard(role, "*", "dynamodb:ListStreams has no resource-level "
                          "permissions; Lambda checks for it when the mapping is created.")
        writes: list[tuple[dynamodb.ITable, list[str]]] = [
            (snapshot_table or table, ["dynamodb:GetItem", "dynamodb:UpdateItem"]),
        ]
        if config.enable_refill and snapshot_table is not None:
            # (without a snapshot table, the grant above already covers the source table)
            writes.append((table, ["dynamodb:UpdateItem"]))
        for target, actions in writes:
            iam.Grant.add_to_principal(
                grantee=self.function, actions=actions, resource_arns=[target.table_arn]
            )
            if target.encryption_key is not None:
                target.encryption_key.grant_encrypt_decrypt(self.function)
        self.log_group.grant_write(self.function)
        bucket = self.archive_bucket
        if bucket is not None:
            objects = bucket.arn_for_objects(f"{config.archive_prefix}*")
            iam.Grant.add_to_principal(
                grantee=self.function, actions=["s3:PutObject"], resource_arns=[objects]
            )
            acknowledge_wildcard(role, objects, "Archive object keys are derived from the "
                              "records; puts are limited to the archive prefix.")
            if bucket.encryption_key is not None:
                bucket.encryption_key.grant_encrypt(self.function)

    def _skip_checkov(self, reserved_concurrency: int | None) -> None:
        """The checkov findings this design does not follow, each with its reason."""
        function = self.function
        skip_checkov(function, "CKV_AWS_116", "Invoked by a DynamoDB stream event source "
                     "mapping, not asynchronously: failed batches go to the mapping's "
                     "on-failure destination (the SQS dead-letter queue).")
        skip_checkov(function, "CKV_AWS_117", "Calls only AWS APIs (DynamoDB, S3) over "
                     "TLS with IAM auth; a VPC would add NAT or endpoints and no isolation.")
        skip_checkov(function, "CKV_AWS_173", "The environment holds the aggregator's "
                     "configuration only, no secrets; Lambda encrypts it at rest.")
        if reserved_concurrency is None:
            skip_checkov(function, "CKV_AWS_115", "Concurrency is bounded by the stream: "
                         "shards x parallelization_factor. A reservation below that "
                         "throttles the stream; set reserved_concurrency to cap it.")
        skip_checkov(self.log_group, "CKV_AWS_158", "Operational JSON logs without "
                     "secrets; CloudWatch Logs encrypts them at rest. A KMS key would need "
                     "a key-policy grant to the Logs service and could stop logging.")
        if self.access_logs_bucket is not None:
            skip_checkov(self.access_logs_bucket, "CKV_AWS_18", "This is the archive "
                         "bucket's server access log destination; logging it into itself "
                         "would loop.")

