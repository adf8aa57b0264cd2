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

from dataclasses import dataclass
from typing import Unpack

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from . import parts
from .alarms import AlarmThresholds, alarm_specs, pipeline_metrics
from .archive_catalog import ArchiveCatalog
from .buckets import ArchiveDefaults, archive_buckets, grant_archive_puts
from .filters import default_filters
from .log_queries import create_query_definitions
from .pipeline import StreamPipelineConstruct, grant_table_stream_read
from .pipeline_settings import USAGE_COUNTS, USAGE_NAMESPACE, AggregatorConfig
from .pipeline_settings import USAGE_ENV_NAMES as ENV_NAMES
from .props import StreamPipelineProps, StreamSettings, resolve

HANDLER = "aggregator.handler.handler"


@dataclass(frozen=True)
class StreamAggregatorDefaults(StreamSettings, ArchiveDefaults):
    """Every default of :class:`StreamAggregator`, in one place: the stream function's
    (:class:`infra.props.StreamSettings`, where ``max_record_age`` is explained)
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
        alarm_thresholds: AlarmThresholds | None = None,
        archive_catalog: bool | None = None,
        **props: Unpack[StreamPipelineProps],
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
            alarm_thresholds: when the alarms fire. Default :class:`AlarmThresholds`
                (the operations guide's critical levels).
            archive_catalog: a Glue table (partition projection) and an Athena
                workgroup over the archive, named after the alarm name prefix. Default:
                on when archival is on. ``True`` with archival off is a ``ValueError``.
            **props: the function, mapping and alarm props every stream construct
                takes (:class:`infra.props.StreamPipelineProps`), over
                :data:`DEFAULTS`. ``filters`` defaults to
                :func:`infra.filters.default_filters` of ``config`` (only the records the
                configuration uses invoke the function); ``[]`` turns filtering off.

        Raises:
            TypeError: a keyword is not one of the construct's props.
            ValueError: a prop is out of range, both archive arguments were given, an
                archive argument was given with archival off, both ``alarm_topic`` and
                ``alarm_emails`` were given, or the table has no stream (or, for a
                table defined in this app, a stream without old and new images).
        """
        super().__init__(scope, construct_id)
        config = config if config is not None else AggregatorConfig()
        settings = resolve(type(self).__name__, DEFAULTS, props, StreamPipelineProps)
        settings.check_stream(source=self.SOURCE)
        monitoring = self._monitoring(settings)
        thresholds = alarm_thresholds or AlarmThresholds()
        stream_arn = parts.require_stream(
            table, prop="table", needs="snapshots need new images, the archive needs old ones")

        self.archive_bucket, self.access_logs_bucket = archive_buckets(
            self, enabled=config.enable_archival, bucket=archive_bucket,
            props=archive_bucket_props)
        self.archive_catalog = self._archive_catalog(
            archive_catalog, config, monitoring.name_prefix, archive_bucket_props)

        self._add_stream_function(
            settings, handler=HANDLER,
            environment=self._environment(config, table, snapshot_table),
            description="Aggregates DynamoDB stream records into snapshots and an archive",
            role_description="Aggregator Lambda: stream read, snapshot writes, archive puts")
        self._grant(table, snapshot_table, config)
        self._map_stream(stream_arn, settings, filters=default_filters(config),
                         calls="AWS APIs (DynamoDB, S3)")
        metrics = pipeline_metrics(self.function, self.dead_letter_queue,
                                   namespace=USAGE_NAMESPACE, counts=USAGE_COUNTS)
        self._monitor(monitoring, alarm_specs(metrics, thresholds, settings.timeout), metrics)
        self.query_definitions: dict[str, logs.QueryDefinition] = create_query_definitions(
            self, log_group=self.log_group, name_prefix=monitoring.name_prefix
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
        ``UpdateItem`` on the snapshot table; on the source table, what zae-limiter's
        bucket maintenance calls (none when ``enable_refill`` is off): ``UpdateItem``
        (refills, shard doubling, restamps), ``GetItem`` (a quota's sibling shards), and
        for a new shard one transaction authorised as ``PutItem`` (the clone),
        ``UpdateItem`` (a quota donor) and ``ConditionCheckItem`` (its owner's META).
        ``s3:PutObject`` under the archive prefix only.
        """
        role = self.function.role
        assert role is not None  # the construct always passes its own role
        grant_table_stream_read(table, self.function)
        reads_and_updates = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
        writes: list[tuple[dynamodb.ITable, list[str]]] = [
            (snapshot_table or table, reads_and_updates)]
        if config.enable_refill:
            maintenance = [*reads_and_updates, "dynamodb:PutItem", "dynamodb:ConditionCheckItem"]
            # (without a snapshot table, one statement: maintenance's covers the snapshots')
            writes = [(snapshot_table, reads_and_updates), (table, maintenance)] \
                if snapshot_table is not None else [(table, maintenance)]
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
