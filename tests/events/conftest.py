"""One synth for the event-metrics infra tests and the demo test, checked by cdk-nag.

Stacks: the example :class:`EventMetricsStack`, and the construct with existing
resources and every prop overridden (``Overridden``) or with archival off
(``NoArchive``). Synth raises on any unacknowledged cdk-nag finding.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from infra.event_metrics import EventMetricsAggregator
from infra.stacks.event_metrics_stack import EventMetricsStack
from streamagg_engine.windows import Window
from streamagg_events.config import EventMetricsConfig
from tests.infra.support import stack_template, synth_with_nag

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

EXAMPLE = "EventMetrics-test"
STACKS = (EXAMPLE, "Overridden", "NoArchive")
STREAM_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/clicks"
TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:alarms"


def build_variants(app: App) -> None:
    overridden = Stack(app, "Overridden")
    EventMetricsAggregator(
        overridden, "Events",
        stream=kinesis.Stream.from_stream_arn(overridden, "Stream", STREAM_ARN),
        lookup_table=dynamodb.Table.from_table_name(overridden, "Lookups", "lookups"),
        metrics_table=dynamodb.Table.from_table_name(overridden, "Metrics", "metrics"),
        archive_bucket=s3.Bucket.from_bucket_name(overridden, "Archive", "existing-archive"),
        config=EventMetricsConfig(windows=(Window.DAILY,), archive_prefix="raw/"),
        batch_size=500, max_batching_window=Duration.seconds(5),
        starting_position=lambda_.StartingPosition.LATEST, retry_attempts=3,
        max_record_age=Duration.hours(1), parallelization_factor=4, reserved_concurrency=5,
        timeout=Duration.seconds(120),
        alarm_topic=sns.Topic.from_topic_arn(overridden, "Topic", TOPIC_ARN),
        alarm_name_prefix="clicks",
    )
    no_archive = Stack(app, "NoArchive")
    EventMetricsAggregator(
        no_archive, "Events", stream=kinesis.Stream(no_archive, "Stream",
                                                    encryption=kinesis.StreamEncryption.MANAGED),
        lookup_table=dynamodb.Table.from_table_name(no_archive, "Lookups", "lookups"),
        config=EventMetricsConfig(enable_archival=False),
    )


@pytest.fixture(scope="session")
def events_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def build(app: App) -> None:
        EventMetricsStack(app, EXAMPLE)
        build_variants(app)

    return synth_with_nag(tmp_path_factory.mktemp("events.out"), build)


@pytest.fixture(scope="session")
def templates(events_assembly: Path) -> dict[str, Template]:
    return {name: stack_template(events_assembly, name) for name in STACKS}
