"""``ProjectionStage``: a source table's stream projected into a read-optimised dashboard table.

The projection pipeline (:mod:`streamagg_projection`) as a sibling of
:class:`infra.StreamAggregator`, built from the same parts
(:class:`infra.pipeline.StreamPipelineConstruct`): the staged ``aggregator`` asset, the
KMS-encrypted dead-letter queue as the mapping's on-failure destination, the alarm topic,
the alarms of :mod:`infra.alarms` (worded for the projection), a dashboard of its own
counts, checkov and cdk-nag reasons. Every built resource is a public attribute.

The dashboard table is new unless one is passed: on-demand, point-in-time recovery,
TTL on ``expires_at``, key ``day_partition`` + ``sk`` (``ingested_at`` under the
``seed-004`` profile: ``ProjectionConfig(profile="seed-004")``, whose metrics and alarms are
also the document's, ``SentimentAnalyzer``/``StreamProcessor*``) and two sparse indexes,
``by_sentiment`` (``day_partition`` + ``sentiment_score_combined``: "today's most
positive items") and ``by_tag`` (``tag`` + ``ingested_at``). See ``docs/projection.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Unpack

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from . import alarms, parts
from .alarms import AlarmThresholds, PipelineMetrics, alarm_specs, pipeline_metrics
from .log_queries import PROJECTION_QUERIES, create_query_definitions
from .pipeline import StreamPipelineConstruct, grant_table_stream_read
from .pipeline_settings import PROJECTION_ENV_NAMES as ENV_NAMES
from .pipeline_settings import PROJECTION_METRICS as METRICS
from .pipeline_settings import ProjectionConfig, projection_item
from .props import StreamPipelineProps, StreamSettings, resolve
from .suppressions import skip_checkov

HANDLER = "streamagg_projection.handler.handler"
BY_SENTIMENT = "by_sentiment"
BY_TAG = "by_tag"
ALARM_KEYS = alarms.ALARM_KEYS
"""The keys of :attr:`ProjectionStage.alarms`: those of :mod:`infra.alarms`, reworded
(:data:`ALARM_DESCRIPTIONS`)."""
ALARM_DESCRIPTIONS: Mapping[str, str] = {
    "errors": "Share of projection invocations that failed (timeouts, crashes, a broken "
    "configuration). Bad data never fails an invocation.",
    "iterator_age": "The dashboard is falling behind the source table: the newest record "
    "of each batch was older than the limit for 3 minutes.",
    "iterator_age_warning": "The dashboard has lagged beyond the healthy range for 15 "
    "minutes.",
    "dlq_depth": "Batches gave up after their retries or record age; the dashboard misses "
    "their changes until they are replayed (runbook in docs/projection.md).",
    "throttles": "Projection invocations were throttled (reserved or account concurrency): "
    "the stream waits meanwhile.",
    "skipped_records": "Analysed source items that cannot be projected were logged and "
    "skipped (RecordsSkipped, or StreamProcessorErrors under the seed-004 profile); their "
    "event ids are in the logs.",
    "failed_writes": "Dashboard batch writes failed or stayed unprocessed after every retry "
    "(FailedWrites); the mapping retries those records.",
}


@dataclass(frozen=True)
class ProjectionDefaults(StreamSettings):
    """Every default of :class:`ProjectionStage`, in one place: the stream function's
    (:class:`infra.props.StreamSettings`; ``max_record_age`` 6 hours leaves 18 of
    the stream's 24 hours to replay a batch from the DLQ), with the seed's batching
    window (100 records, 5 s)."""

    max_batching_window: Duration = Duration.seconds(5)


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


class ProjectionStage(StreamPipelineConstruct):
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

    LABEL = "Projection stage"
    SOURCE = "DynamoDB stream"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source_table: dynamodb.ITable,
        config: ProjectionConfig | None = None,
        dashboard_table: dynamodb.ITable | None = None,
        alarm_thresholds: AlarmThresholds | None = None,
        **props: Unpack[StreamPipelineProps],
    ) -> None:
        """Args:
            source_table: an existing table with a stream; for a table of this app the
                view type must be ``NEW_AND_OLD_IMAGES`` (deletions need old images).
            config: the pipeline's settings; ``dashboard_table_name`` is replaced by
                the real table's name. Default :class:`ProjectionConfig`. Its ``profile``
                (``"seed-004"``) also sets the new table's sort key and the metric
                namespace and names the alarms and the dashboard read.
            dashboard_table: an existing dashboard table (keys ``day_partition`` and
                ``config.sort_key``, the same indexes).
                Default: a new one (see the module docstring).
            alarm_thresholds: the thresholds of :class:`infra.alarms.AlarmThresholds`
                these alarms use (errors, iterator age, DLQ, skipped, failed writes).
            **props: the function, mapping and alarm props every stream construct
                takes (:class:`infra.props.StreamPipelineProps`), over :data:`DEFAULTS`
                (a 5 s batching window). ``filters`` defaults to :func:`default_filters`;
                ``[]`` turns filtering off. Any ``parallelization_factor`` keeps the
                order per item key.

        Raises:
            TypeError: a keyword is not one of the construct's props.
            ValueError: a prop is out of range (the message names it), both
                ``alarm_topic`` and ``alarm_emails`` were given, or the source table has
                no stream with old and new images.
        """
        super().__init__(scope, construct_id)
        settings = resolve(type(self).__name__, DEFAULTS, props, StreamPipelineProps)
        settings.check_stream(source=self.SOURCE)
        monitoring = self._monitoring(settings)
        stream_arn = parts.require_stream(source_table, prop="source_table",
                                          needs="deletions need the old images")
        config = config or ProjectionConfig()

        self.dashboard_table: dynamodb.ITable = dashboard_table or \
            self._new_dashboard_table(config.sort_key)
        environment = config.to_env()
        environment[ENV_NAMES["dashboard_table_name"]] = self.dashboard_table.table_name
        self._add_stream_function(
            settings, handler=HANDLER, environment=environment,
            description="Projects analysed source items into the dashboard table",
            role_description="Projection Lambda: stream read, dashboard batch writes")
        self._grant(source_table)
        self._map_stream(stream_arn, settings, filters=default_filters(config),
                         calls="DynamoDB")
        metrics = _profile_metrics(self.function, self.dead_letter_queue, config)
        specs = alarm_specs(metrics, alarm_thresholds or AlarmThresholds(), settings.timeout,
                            ALARM_DESCRIPTIONS)
        self._monitor(monitoring, specs, metrics)
        self.query_definitions = create_query_definitions(
            self, log_group=self.log_group, name_prefix=monitoring.name_prefix,
            queries=PROJECTION_QUERIES)

    def _new_dashboard_table(self, sort_key: str) -> dynamodb.Table:
        table = dynamodb.Table(
            self, "DashboardTable",
            partition_key=_string(projection_item.PARTITION_KEY),
            sort_key=_string(sort_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=projection_item.TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.RETAIN,
        )
        table.add_global_secondary_index(
            index_name=BY_SENTIMENT, partition_key=_string(projection_item.PARTITION_KEY),
            sort_key=_string(projection_item.COMBINED), projection_type=dynamodb.ProjectionType.ALL)
        table.add_global_secondary_index(
            index_name=BY_TAG, partition_key=_string(projection_item.TAG),
            sort_key=_string("ingested_at"), projection_type=dynamodb.ProjectionType.ALL)
        skip_checkov(table, "CKV_AWS_119", "Encrypted with the AWS-managed key: the "
                     "dashboard's readers then need no key grant, and the table holds a "
                     "rebuildable projection of the source table.")
        return table

    def _grant(self, source_table: dynamodb.ITable) -> None:
        """Stream read on the source, BatchWriteItem on the dashboard table only.

        Not its indexes (DynamoDB maintains them), no PutItem, no reads: the projection
        never reads what it writes. For ``dynamodb:ListStreams`` on ``*`` see
        :func:`infra.pipeline.grant_table_stream_read`.
        """
        grant_table_stream_read(source_table, self.function)
        iam.Grant.add_to_principal(grantee=self.function, actions=["dynamodb:BatchWriteItem"],
                                   resource_arns=[self.dashboard_table.table_arn])
        if self.dashboard_table.encryption_key is not None:
            self.dashboard_table.encryption_key.grant_encrypt_decrypt(self.function)
        self.log_group.grant_write(self.function)


def _profile_metrics(function: lambda_.IFunction, dead_letter_queue: sqs.IQueue,
                     config: ProjectionConfig) -> PipelineMetrics:
    """The metrics under the profile's namespace and names; the alarms of
    :func:`infra.alarms.alarm_specs` find skipped records and failed writes under the names
    they read (``RecordsSkipped``, ``FailedWrites``) whatever the profile calls them."""
    names = METRICS[config.profile]
    metrics = pipeline_metrics(function, dead_letter_queue, namespace=names.namespace,
                               counts=names.counts)
    counts = metrics.counts
    return replace(metrics, counts={**counts, "RecordsSkipped": counts[names.skipped],
                                    "FailedWrites": counts[names.failed_writes]})


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)
