"""The event-metrics stacks for the infra tests and the demo test, checked by cdk-nag.

The example :class:`EventMetricsStack` is the app's own (``app_assembly``, one synth for
every system); one synth here holds the construct with existing resources and every prop
overridden (``Overridden``), with archival off (``NoArchive``), or under the ``seed-003``
profile on the document's existing table and bucket (``Seed003``). Synth raises on any
unacknowledged cdk-nag finding.
"""

from __future__ import annotations

import json
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
from streamagg_engine.windows import Window
from streamagg_events.config import EventMetricsConfig
from tests.infra.support import ENV_NAME, synth_with_nag

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

EXAMPLE = f"EventMetrics-{ENV_NAME}"
"""The example stack, from the app's one synth."""
SEED_003 = "Seed003"
STACKS = (EXAMPLE, "Overridden", "NoArchive", SEED_003)
STREAM_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/clicks"
TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:alarms"
SEED_003_LOOKUPS = "seed-003-lookups"
"""The lookup table of the ``Seed003`` stack (seed 003's document does not name one)."""


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
    seed = Stack(app, SEED_003)
    EventMetricsAggregator(
        seed, "Events", stream=kinesis.Stream.from_stream_arn(seed, "Stream", STREAM_ARN),
        lookup_table=dynamodb.Table.from_table_name(seed, "Lookups", SEED_003_LOOKUPS),
        metrics_table=dynamodb.Table.from_table_name(seed, "Metrics", "event-aggregations"),
        archive_bucket=s3.Bucket.from_bucket_name(seed, "Archive", "event-archive"),
        profile="seed-003",
    )


@pytest.fixture(scope="session")
def events_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The construct variants; the example stack is the app's own (``app_assembly``)."""
    return synth_with_nag(tmp_path_factory.mktemp("events.out"), build_variants)


@pytest.fixture(scope="session")
def template_files(app_assembly: Path, events_assembly: Path) -> dict[str, Path]:
    """Each stack's template file, by stack name."""
    return {name: (app_assembly if name == EXAMPLE else events_assembly)
            / f"{name}.template.json" for name in STACKS}


@pytest.fixture(scope="session")
def templates(template_files: dict[str, Path]) -> dict[str, Template]:
    return {name: Template.from_json(json.loads(path.read_text()))
            for name, path in template_files.items()}
