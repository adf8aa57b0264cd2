"""``ProjectionStack``: a ``sentiment-items``-like source table streamed into a dashboard.

The source table is the seed's primary table: ``source_id`` + ``ingested_at``, on-demand,
point-in-time recovery, deletion protection, retained, streaming ``NEW_AND_OLD_IMAGES``.
Its stream feeds a :class:`infra.projection.ProjectionStage`.

Settings come from the CDK context, prefixed ``projection_`` so they never collide with
the aggregator stack's: any :class:`ProjectionConfig` field but the table name
(``projection_ttl_days``, ``projection_analyzed_status``, ...), plus
``projection_batch_size`` and ``projection_alarm_email``. They are parsed like the
function's environment, so a bad value fails synth naming the setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack, Tags
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from ..pipeline_settings import PROJECTION_ENV_NAMES as ENV_NAMES
from ..pipeline_settings import ProjectionConfig
from ..projection import DEFAULTS, ProjectionStage
from ..suppressions import skip_checkov

CONTEXT_PREFIX = "projection_"
CONFIG_CONTEXT_KEYS = tuple(CONTEXT_PREFIX + name for name in ENV_NAMES
                            if name != "dashboard_table_name")


class ProjectionStack(Stack):
    """The seed's primary table and its read-optimised projection."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        config = config_from_context(
            {key: self.node.try_get_context(key) for key in CONFIG_CONTEXT_KEYS})
        self.table = dynamodb.Table(
            self, "SourceTable",
            partition_key=dynamodb.Attribute(name="source_id",
                                             type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="ingested_at", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        skip_checkov(self.table, "CKV_AWS_119", "Encrypted with the AWS-managed key: the "
                     "ingestion and analysis writers need no key grant.")
        emails = self.node.try_get_context(f"{CONTEXT_PREFIX}alarm_email") or ""
        batch_size = self.node.try_get_context(f"{CONTEXT_PREFIX}batch_size")
        self.projection = ProjectionStage(
            self, "Projection", source_table=self.table, config=config,
            alarm_emails=[e.strip() for e in str(emails).split(",") if e.strip()],
            batch_size=DEFAULTS.batch_size if batch_size is None
            else _whole("batch_size", batch_size),
        )
        # Not on the KMS key: moto 5.2.1 cannot create a tagged AWS::KMS::Key.
        Tags.of(self).add("project", "stream-aggregator",
                          exclude_resource_types=["AWS::KMS::Key"])
        CfnOutput(self, "TableName", value=self.table.table_name)
        CfnOutput(self, "TableStreamArn", value=self.table.table_stream_arn or "")
        CfnOutput(self, "DashboardTableName",
                  value=self.projection.dashboard_table.table_name)
        CfnOutput(self, "FunctionName", value=self.projection.function.function_name)
        CfnOutput(self, "DeadLetterQueueUrl",
                  value=self.projection.dead_letter_queue.queue_url)
        CfnOutput(self, "DashboardName", value=self.projection.dashboard.dashboard_name)


def config_from_context(context: Mapping[str, object]) -> ProjectionConfig:
    """A :class:`ProjectionConfig` from ``projection_<field>`` context values (None: unset)."""
    env = {ENV_NAMES[key.removeprefix(CONTEXT_PREFIX)]: str(value)
           for key, value in context.items() if value is not None}
    return ProjectionConfig.from_env(env)


def _whole(name: str, value: object) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{CONTEXT_PREFIX}{name} (context): {value!r} is not a whole "
                         "number") from None
