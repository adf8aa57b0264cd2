"""``EventMetricsAggregator``: a Kinesis stream of JSON events to exact per-variant counters.

The event pipeline (``streamagg_events``) as a sibling of :class:`StreamAggregator`,
built from the same parts: :class:`infra.pipeline.StreamPipelineConstruct` (function,
log group, role, KMS-encrypted dead-letter queue as the mapping's on-failure destination,
the mapping, the alarm topic, the alarms of :mod:`infra.alarms` (the pipeline emits the
same ``RecordsSkipped`` and ``FailedWrites`` metrics) and a dashboard of its own counts)
and :mod:`infra.buckets` (the archive bucket with its secure defaults). Every built
resource is a public attribute.

The function's environment is :meth:`EventMetricsConfig.to_env` with the metrics table,
lookup table and archive bucket names replaced by the actual resources' names; under the
``seed-003`` profile also seed 003's own names for them (``DYNAMODB_TABLE``, ``S3_BUCKET``),
which the function checks agree with ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Unpack

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .alarms import AlarmThresholds, alarm_specs, pipeline_metrics
from .buckets import ArchiveDefaults, archive_buckets, grant_archive_puts
from .log_queries import EVENT_QUERIES, create_query_definitions
from .pipeline import StreamPipelineConstruct
from .pipeline_settings import EVENTS_COUNTS as COUNTS
from .pipeline_settings import EVENTS_ENV_NAMES as ENV_NAMES
from .pipeline_settings import EVENTS_NAMESPACE as NAMESPACE
from .pipeline_settings import EventMetricsConfig
from .props import StreamPipelineProps, StreamSettings, resolve
from .suppressions import skip_checkov

HANDLER = "streamagg_events.handler.handler"


@dataclass(frozen=True)
class EventMetricsDefaults(StreamSettings, ArchiveDefaults):
    """Every default of :class:`EventMetricsAggregator`, in one place: the stream
    function's (:class:`infra.props.StreamSettings`: ``max_record_age`` is 6
    hours, so a failed batch can still be re-read from the stream, which keeps it 24
    hours by default) and the archive bucket's (:class:`infra.buckets.ArchiveDefaults`)."""


DEFAULTS = EventMetricsDefaults()


class EventMetricsAggregator(StreamPipelineConstruct):
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
        dashboard: the CloudWatch dashboard (alarms, lag, DLQ, the pipeline's counts).
    """

    LABEL = "Event metrics"
    SOURCE = "Kinesis stream"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stream: kinesis.IStream,
        lookup_table: dynamodb.ITable,
        config: EventMetricsConfig | None = None,
        profile: str | None = None,
        metrics_table: dynamodb.ITable | None = None,
        archive_bucket: s3.IBucket | None = None,
        archive_bucket_props: s3.BucketProps | None = None,
        alarm_thresholds: AlarmThresholds | None = None,
        **props: Unpack[StreamPipelineProps],
    ) -> None:
        """Args:
            stream: the Kinesis stream of events (base64 JSON, see ``docs/event-metrics.md``).
            lookup_table: experiments and assignments (key ``pk``); read only.
            config: the pipeline's settings. Default :class:`EventMetricsConfig` of
                ``profile``.
            profile: ``"default"`` or ``"seed-003"`` (seed 003's deployment: metrics table
                keys ``partition_key``/``sort_key``); the same as ``config.profile``, given
                once: both, differing, is an error.
            metrics_table: an existing table with keys ``config.key_attributes`` (String:
                ``pk``/``sk``, or ``partition_key``/``sort_key`` under ``seed-003``) and TTL
                on ``ttl``; a table of the same app with other keys is refused. Default: a
                new one with those keys (on-demand, encrypted, point-in-time recovery, TTL,
                deletion protection, retained).
            archive_bucket / archive_bucket_props: an existing bucket, or props merged
                over the secure defaults for a new one; not both, neither with archival off.
            alarm_thresholds: when the alarms fire, as for
                :class:`~infra.stream_aggregator.StreamAggregator`.
            **props: the function, mapping and alarm props every stream construct
                takes (:class:`infra.props.StreamPipelineProps`), over :data:`DEFAULTS`.
                ``max_record_age`` must stay below ``config.marker_ttl_days``.
                ``filters`` (default none) are Kinesis filter criteria, matched on the
                fields of each event's JSON under ``data``, e.g.
                ``lambda_.FilterCriteria.filter({"data": {"event_type": ["click"]}})``:
                an event filtered out is never counted nor archived.

        Raises:
            TypeError: a keyword is not one of the construct's props.
            ValueError: a prop is out of range or props conflict; the message names it.
        """
        super().__init__(scope, construct_id)
        config = _with_profile(config, profile)
        settings = resolve(type(self).__name__, DEFAULTS, props, StreamPipelineProps)
        settings.check_stream(source=self.SOURCE)
        _check_marker_lifetime(config, settings.max_record_age, stream)
        monitoring = self._monitoring(settings)

        self.archive_bucket, self.access_logs_bucket = archive_buckets(
            self, enabled=config.enable_archival, bucket=archive_bucket,
            props=archive_bucket_props)
        if metrics_table is not None:
            _check_keys(metrics_table, config)
        self.metrics_table: dynamodb.ITable = metrics_table or self._new_metrics_table(config)
        self._add_stream_function(
            settings, handler=HANDLER, environment=self._environment(config, lookup_table),
            description="Counts Kinesis JSON events per experiment variant and archives them",
            role_description="Event metrics Lambda: stream read, lookups, counters, "
            "archive puts")
        self._grant(stream, lookup_table, config)
        self._map_stream(stream.stream_arn, settings, filters=[],
                         calls="AWS APIs (Kinesis, DynamoDB, S3)")
        metrics = pipeline_metrics(self.function, self.dead_letter_queue,
                                   namespace=NAMESPACE, counts=COUNTS)
        thresholds = alarm_thresholds or AlarmThresholds()
        self._monitor(monitoring, alarm_specs(metrics, thresholds, settings.timeout), metrics)
        self.query_definitions = create_query_definitions(
            self, log_group=self.log_group, name_prefix=monitoring.name_prefix,
            queries=EVENT_QUERIES)

    def _new_metrics_table(self, config: EventMetricsConfig) -> dynamodb.Table:
        table = dynamodb.Table(
            self, "MetricsTable",
            partition_key=dynamodb.Attribute(name=config.partition_key,
                                             type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=config.sort_key,
                                        type=dynamodb.AttributeType.STRING),
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

    def _environment(self, config: EventMetricsConfig,
                     lookup_table: dynamodb.ITable) -> dict[str, str]:
        env = config.to_env()
        env[ENV_NAMES["metrics_table_name"]] = self.metrics_table.table_name
        env[ENV_NAMES["lookup_table_name"]] = lookup_table.table_name
        env[ENV_NAMES["archive_bucket_name"]] = (
            self.archive_bucket.bucket_name if self.archive_bucket else "")
        if config.follows_document:
            for name, document in EventMetricsConfig.DOCUMENT_ENV_NAMES.items():
                if env[ENV_NAMES[name]]:
                    env[document] = env[ENV_NAMES[name]]
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
        if self.archive_bucket is not None:
            grant_archive_puts(self.archive_bucket, self.function, role, config.archive_prefix)


def _with_profile(config: EventMetricsConfig | None, profile: str | None) -> EventMetricsConfig:
    """The config, of ``profile`` when given: given both ways, they must agree."""
    if config is None:
        return EventMetricsConfig() if profile is None else EventMetricsConfig(profile=profile)
    if profile is not None and profile != config.profile:
        raise ValueError(f"profile ({profile!r}) and config.profile ({config.profile!r}) "
                         "disagree: give the profile once")
    return config


def _check_keys(table: dynamodb.ITable, config: EventMetricsConfig) -> None:
    """A table of the same app shows its keys: they must be the ones the function writes."""
    if not isinstance(table, dynamodb.Table):
        return
    schema = table.schema()
    keys = tuple(key.name for key in (schema.partition_key, schema.sort_key) if key)
    if keys != tuple(config.key_attributes):
        raise ValueError(f"metrics_table has keys {','.join(keys)} but "
                         f"config.key_attributes is {','.join(config.key_attributes)} "
                         f"(profile {config.profile}): they must be the same")


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
