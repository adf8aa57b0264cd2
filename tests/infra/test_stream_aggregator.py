"""StreamAggregator on its own: overrides, an existing bucket, archival off, bad props."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aggregator.config import AggregatorConfig
from aws_cdk import App, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from infra import StreamAggregator
from infra.stream_aggregator import aggregator_package_dir, stage_lambda_asset

EXISTING_BUCKET = "existing-archive-bucket"


def _table(stack: Stack, stream: dynamodb.StreamViewType | None) -> dynamodb.Table:
    return dynamodb.Table(
        stack,
        "Table",
        partition_key=dynamodb.Attribute(name="PK", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="SK", type=dynamodb.AttributeType.STRING),
        stream=stream,
        removal_policy=RemovalPolicy.RETAIN,
    )


def _stack(app: App, name: str) -> tuple[Stack, dynamodb.Table]:
    stack = Stack(app, name)
    return stack, _table(stack, dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)


@dataclass(frozen=True)
class Variants:
    overridden: Template
    existing_bucket: Template
    no_archive: Template


@pytest.fixture(scope="module")
def variants() -> Variants:
    """Three stacks in one app, so that they share one synth."""
    app = App()
    stack, table = _stack(app, "Overridden")
    StreamAggregator(
        stack, "Aggregator", table=table, config=AggregatorConfig(),
        archive_bucket_props=s3.BucketProps(versioned=False),
        batch_size=500, max_batching_window=Duration.seconds(5), retry_attempts=3,
        max_record_age=Duration.hours(1), parallelization_factor=4, memory_size=1024,
        timeout=Duration.seconds(120),
    )
    existing, table = _stack(app, "ExistingBucket")
    StreamAggregator(
        existing, "Aggregator", table=table, config=AggregatorConfig(archive_prefix="logs/"),
        archive_bucket=s3.Bucket.from_bucket_name(existing, "Archive", EXISTING_BUCKET),
    )
    no_archive, table = _stack(app, "NoArchive")
    StreamAggregator(
        no_archive, "Aggregator", table=table,
        config=AggregatorConfig(enable_archival=False),
    )
    return Variants(
        overridden=Template.from_stack(stack),
        existing_bucket=Template.from_stack(existing),
        no_archive=Template.from_stack(no_archive),
    )


def _s3_statements(template: Template) -> list[dict[str, Any]]:
    statements = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            if any(a.startswith("s3:") for a in actions):
                statements.append(statement)
    return statements


# --- overrides -----------------------------------------------------------------------


def test_overridden_stream_props_reach_the_mapping(variants: Variants) -> None:
    variants.overridden.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "BatchSize": 500,
        "MaximumBatchingWindowInSeconds": 5,
        "MaximumRetryAttempts": 3,
        "MaximumRecordAgeInSeconds": 3600,
        "ParallelizationFactor": 4,
    })


def test_overridden_function_props_reach_the_function(variants: Variants) -> None:
    variants.overridden.has_resource_properties("AWS::Lambda::Function", {
        "MemorySize": 1024, "Timeout": 120,
    })


def test_archive_bucket_props_override_a_default_visibly(variants: Variants) -> None:
    variants.overridden.has_resource_properties("AWS::S3::Bucket", {
        "VersioningConfiguration": Match.absent(),
        "LoggingConfiguration": Match.any_value(),
        "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
    })


# --- an existing bucket --------------------------------------------------------------


def test_existing_bucket_creates_no_bucket(variants: Variants) -> None:
    variants.existing_bucket.resource_count_is("AWS::S3::Bucket", 0)


def test_existing_bucket_is_named_in_the_environment(variants: Variants) -> None:
    variants.existing_bucket.has_resource_properties("AWS::Lambda::Function", {
        "Environment": {"Variables": Match.object_like({
            "ARCHIVE_BUCKET_NAME": EXISTING_BUCKET, "ARCHIVE_PREFIX": "logs/",
        })},
    })


def test_existing_bucket_grant_is_limited_to_the_configured_prefix(variants: Variants) -> None:
    (statement,) = _s3_statements(variants.existing_bucket)
    assert statement["Action"] == "s3:PutObject"
    resource = statement["Resource"]["Fn::Join"][1]
    assert resource[-1] == f":s3:::{EXISTING_BUCKET}/logs/*"


# --- archival off --------------------------------------------------------------------


def test_archival_off_creates_no_bucket_and_no_s3_grant(variants: Variants) -> None:
    variants.no_archive.resource_count_is("AWS::S3::Bucket", 0)
    assert _s3_statements(variants.no_archive) == []


def test_archival_off_leaves_the_bucket_name_empty(variants: Variants) -> None:
    variants.no_archive.has_resource_properties("AWS::Lambda::Function", {
        "Environment": {"Variables": Match.object_like({
            "ENABLE_ARCHIVAL": "false", "ARCHIVE_BUCKET_NAME": "",
        })},
    })


# --- errors --------------------------------------------------------------------------


def _build(stream: dynamodb.StreamViewType | None = None, **kwargs: Any) -> StreamAggregator:
    stack = Stack(App(), "Errors")
    table = _table(stack, stream or dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    config = kwargs.pop("config", AggregatorConfig())
    return StreamAggregator(stack, "Aggregator", table=table, config=config, **kwargs)


def test_both_archive_arguments_are_refused() -> None:
    stack = Stack(App(), "Errors")
    table = _table(stack, dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    bucket = s3.Bucket.from_bucket_name(stack, "Existing", EXISTING_BUCKET)
    with pytest.raises(ValueError, match=r"^archive_bucket and archive_bucket_props are mutually"):
        StreamAggregator(
            stack, "Aggregator", table=table, config=AggregatorConfig(),
            archive_bucket=bucket, archive_bucket_props=s3.BucketProps(),
        )


def test_archive_bucket_with_archival_off_is_refused() -> None:
    with pytest.raises(ValueError, match=r"config.enable_archival is false"):
        _build(
            config=AggregatorConfig(enable_archival=False),
            archive_bucket_props=s3.BucketProps(),
        )


def test_table_without_stream_is_refused() -> None:
    stack = Stack(App(), "Errors")
    table = _table(stack, None)
    with pytest.raises(
        ValueError, match=r"^table has no stream: enable stream=NEW_AND_OLD_IMAGES"
    ):
        StreamAggregator(stack, "Aggregator", table=table, config=AggregatorConfig())


def test_stream_without_old_images_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^table stream view type is NEW_IMAGE: enable"):
        _build(stream=dynamodb.StreamViewType.NEW_IMAGE)


@pytest.mark.parametrize(("prop", "value", "message"), [
    ("batch_size", 0, r"^batch_size must be a whole number from 1 to 10000, got 0$"),
    ("batch_size", 10_001, r"^batch_size must be a whole number from 1 to 10000"),
    ("retry_attempts", -2, r"^retry_attempts must be a whole number from -1 to 10000"),
    ("parallelization_factor", 11, r"^parallelization_factor must be .* from 1 to 10,"),
    ("memory_size", 64, r"^memory_size must be a whole number from 128 to 10240"),
    ("max_batching_window", Duration.minutes(6), r"^max_batching_window must be from 0 to 300"),
    ("max_record_age", Duration.days(8), r"^max_record_age must be from 60 to 604800"),
    ("timeout", Duration.minutes(16), r"^timeout must be from 1 to 900 seconds"),
])
def test_out_of_range_prop_is_refused_by_name(prop: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _build(**{prop: value})


# --- the Lambda asset ----------------------------------------------------------------


def test_asset_holds_the_aggregator_sources_only(tmp_path: Path) -> None:
    staged = stage_lambda_asset()
    files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
    expected = sorted(
        f"aggregator/{p.relative_to(aggregator_package_dir()).as_posix()}"
        for p in aggregator_package_dir().rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert files == expected
    assert not any("boto3" in f or "__pycache__" in f for f in files)


def test_asset_is_found_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = stage_lambda_asset()
    monkeypatch.chdir(tmp_path)
    assert stage_lambda_asset() == before


def test_asset_directory_is_named_by_content(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "handler.py").write_text("X = 1\n")
    first = stage_lambda_asset(package)
    (package / "handler.py").write_text("X = 2\n")
    second = stage_lambda_asset(package)
    assert first != second
    assert (second / "aggregator" / "handler.py").read_text() == "X = 2\n"
