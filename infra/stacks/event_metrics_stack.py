"""``EventMetricsStack``: an encrypted Kinesis stream, a lookup table and the event pipeline.

Settings come from the CDK context under the pipeline's environment names in lower case
(``-c events_windows=hourly`` or ``events_unique_user_shards`` in ``cdk.json``); they go
through :meth:`EventMetricsConfig.from_env`, so a bad value fails ``cdk synth`` naming it.
Resource names are not settings: the construct sets them from the resources.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from constructs import Construct

from ..event_metrics import EventMetricsAggregator
from ..pipeline_settings import EVENTS_ENV_NAMES as ENV_NAMES
from ..pipeline_settings import EventMetricsConfig
from ..suppressions import skip_checkov

_RESOURCE_FIELDS = frozenset({"metrics_table_name", "lookup_table_name", "archive_bucket_name"})
CONTEXT_KEYS = {name: var.lower() for name, var in ENV_NAMES.items()
                if name not in _RESOURCE_FIELDS}
"""Config field -> context key (``events_windows``, ...)."""


def config_from_context(stack: Stack) -> EventMetricsConfig:
    env: dict[str, str] = {}
    for name, key in CONTEXT_KEYS.items():
        value = stack.node.try_get_context(key)
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        env[ENV_NAMES[name]] = str(value)
    return EventMetricsConfig.from_env(env)


class EventMetricsStack(Stack):
    """The example: an encrypted stream (aws/kinesis key, 24 h), the lookup table, the pipeline."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        config = config_from_context(self)
        # The AWS-managed key (aws/kinesis), as cdk-nag's KDS3 asks: producers and the
        # mapping need no grant on a key of ours.
        self.stream = kinesis.Stream(
            self, "Events", shard_count=1, retention_period=Duration.hours(24),
            encryption=kinesis.StreamEncryption.MANAGED)
        self.lookup_table = dynamodb.Table(
            self, "Lookups",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=True, removal_policy=RemovalPolicy.RETAIN)
        skip_checkov(self.lookup_table, "CKV_AWS_119", "Encrypted with the AWS-managed key: "
                     "experiment and assignment data is read by several services without a "
                     "key grant each.")
        self.events = EventMetricsAggregator(
            self, "EventMetrics", stream=self.stream, lookup_table=self.lookup_table,
            config=config)
        # moto 5.2.1 cannot create a tagged AWS::KMS::Key from a template.
        Tags.of(self).add("project", "stream-aggregator", exclude_resource_types=["AWS::KMS::Key"])
        CfnOutput(self, "StreamName", value=self.stream.stream_name)
        CfnOutput(self, "StreamArn", value=self.stream.stream_arn)
        CfnOutput(self, "LookupTableName", value=self.lookup_table.table_name)
        CfnOutput(self, "MetricsTableName", value=self.events.metrics_table.table_name)
        CfnOutput(self, "FunctionName", value=self.events.function.function_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.events.dead_letter_queue.queue_url)
        CfnOutput(self, "DashboardName", value=self.events.dashboard.dashboard_name)
        if self.events.archive_bucket is not None:
            CfnOutput(self, "ArchiveBucketName", value=self.events.archive_bucket.bucket_name)
