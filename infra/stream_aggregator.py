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

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from . import parts
from .alarms import AlarmThresholds, alarm_specs, pipeline_metrics
from .archive_catalog import ArchiveCatalog
from .buckets import ArchiveDefaults, archive_buckets, grant_archive_puts
from .filters import default_filters
from .log_queries import create_query_definitions
from .pipeline import StreamFunctionProps, StreamPipelineConstruct, grant_table_stream_read
from .pipeline_settings import USAGE_COUNTS, USAGE_NAMESPACE, AggregatorConfig
from .pipeline_settings import USAGE_ENV_NAMES as ENV_NAMES

HANDLER = "aggregator.handler.handler"


@dataclass(frozen=True)
class StreamAggregatorDefaults(StreamFunctionProps, ArchiveDefaults):
    """Every default of :class:`StreamAggregator`, in one place: the stream function's
    (:class:`infra.pipeline.StreamFunctionProps`, where ``max_record_age`` is explained)
    and the archive bucket's (:class:`infra.buckets.ArchiveDefaults`)."""

    memory_size: int = 1_769
    """One full vCPU. A batch is CPU-bound (botocore's per-request cost, under the GIL):
    at 512 MB a 1,000-record batch takes about 2.6 s, too slow for a saturated shard;
    here about 0.86 s (``make bench``), for about the same cost per record."""
    dlq_retention: Duration = parts.DLQ_RETENTION


DEFAULTS = StreamAggregatorDefaults()


class StreamAggregator(StreamPipelineConstruct):
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

    LABEL = "Stream aggregator"
    SOURCE = "DynamoDB stream"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        config: AggregatorConfig | None = None,
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
            config: how records become snapshots and archive objects. Default:
                ``AggregatorConfig()``, the zae-limiter profile. Its
                ``table_name``, ``snapshot_table_name`` and ``archive_bucket_name`` are
                replaced in the function's environment by the actual resources' names;
                ``enable_archival`` decides whether there is an archive bucket.
            snapshot_table: where snapshot items go. Default: ``table``.
            archive_bucket: an existing bucket for the archive. Default: a new one.
            archive_bucket_props: props for the new archive bucket, merged over the
                secure defaults (block public access, SSL only, S3-managed encryption,
                ACLs disabled, versioned, retained, server access logs to a bucket of
                its own, :func:`infra.buckets.archive_lifecycle_rules`). Not together with
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
            memory_size: function memory in MB, 128..10240. Default 1,769 (one vCPU).
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
        config = config if config is not None else AggregatorConfig()
        props = StreamFunctionProps(
            batch_size=batch_size, max_batching_window=max_batching_window,
            starting_position=starting_position, retry_attempts=retry_attempts,
            max_record_age=max_record_age, parallelization_factor=parallelization_factor,
            memory_size=memory_size, timeout=timeout, architecture=architecture,
            reserved_concurrency=reserved_concurrency, log_retention=log_retention)
        props.check_stream(source=self.SOURCE)
        alarm_props = self._alarm_props(alarm_topic=alarm_topic, alarm_emails=alarm_emails,
                                        alarm_name_prefix=alarm_name_prefix,
                                        dashboard_name=dashboard_name)
        thresholds = alarm_thresholds or AlarmThresholds()
        stream_arn = parts.require_stream(
            table, prop="table", needs="snapshots need new images, the archive needs old ones")

        self.archive_bucket, self.access_logs_bucket = archive_buckets(
            self, enabled=config.enable_archival, bucket=archive_bucket,
            props=archive_bucket_props)
        self.archive_catalog = self._archive_catalog(
            archive_catalog, config, alarm_props.name_prefix, archive_bucket_props)

        self._add_stream_function(
            props, handler=HANDLER,
            environment=self._environment(config, table, snapshot_table),
            description="Aggregates DynamoDB stream records into snapshots and an archive",
            role_description="Aggregator Lambda: stream read, snapshot writes, archive puts")
        self._grant(table, snapshot_table, config)
        self._map_stream(stream_arn, props,
                         filters=default_filters(config) if filters is None else filters,
                         calls="AWS APIs (DynamoDB, S3)")
        metrics = pipeline_metrics(self.function, self.dead_letter_queue,
                                   namespace=USAGE_NAMESPACE, counts=USAGE_COUNTS)
        self._monitor(alarm_props, alarm_specs(metrics, thresholds, timeout), metrics)
        self.query_definitions: dict[str, logs.QueryDefinition] = create_query_definitions(
            self, log_group=self.log_group, name_prefix=alarm_props.name_prefix
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

        Besides ``dynamodb:ListStreams`` (see :func:`infra.pipeline.grant_table_stream_read`),
        every DynamoDB action is scoped to one table and its stream, and only the items'
        table, not its indexes (items are read and written by key): ``GetItem``/
        ``UpdateItem`` on the snapshot table, ``UpdateItem`` on the source table for
        refills (none when refill is off). ``s3:PutObject`` under the archive prefix only.
        """
        role = self.function.role
        assert role is not None  # the construct always passes its own role
        grant_table_stream_read(table, self.function)
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
        if self.archive_bucket is not None:
            grant_archive_puts(self.archive_bucket, self.function, role,
                               config.archive_prefix)
