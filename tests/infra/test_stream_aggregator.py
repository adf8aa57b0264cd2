"""StreamAggregator on its own: every override, existing resources, archival off, bad props.

The variant stacks come from one shared synth (``variants`` in conftest, checked by
cdk-nag); each test reads one behaviour from them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template

from aggregator.config import AggregatorConfig
from infra import StreamAggregator

from .support import CUSTOM_FILTER, EXISTING_BUCKET, EXISTING_TOPIC, Variants


def _table(stack: Stack, stream: dynamodb.StreamViewType | None) -> dynamodb.Table:
    return dynamodb.Table(
        stack,
        "Table",
        partition_key=dynamodb.Attribute(name="PK", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="SK", type=dynamodb.AttributeType.STRING),
        stream=stream,
        removal_policy=RemovalPolicy.RETAIN,
    )


def _statements(template: Template) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _s3_statements(template: Template) -> list[dict[str, Any]]:
    return [s for s in _statements(template)
            if any(a.startswith("s3:") for a in _actions(s))]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _table_arn(template: Template, prefix: str) -> dict[str, Any]:
    (logical_id,) = (lid for lid in template.find_resources("AWS::DynamoDB::Table")
                     if lid.startswith(prefix))
    return {"Fn::GetAtt": [logical_id, "Arn"]}


_ITEM_ACTIONS = {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem",
                 "dynamodb:ConditionCheckItem"}
_MAINTENANCE = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem",
                "dynamodb:ConditionCheckItem"]
"""What zae-limiter's bucket maintenance calls: refill, shard doubling and restamps
(UpdateItem), a quota's sibling reads (GetItem), a new shard's transaction (PutItem,
UpdateItem, ConditionCheckItem)."""


def _item_statements(template: Template) -> list[dict[str, Any]]:
    """Statements with item actions, not the stream's."""
    return [s for s in _statements(template) if any(a in _ITEM_ACTIONS for a in _actions(s))]


# --- overrides -----------------------------------------------------------------------


def test_overridden_stream_props_reach_the_mapping(variants: Variants) -> None:
    variants.overridden.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "BatchSize": 500,
        "MaximumBatchingWindowInSeconds": 5,
        "MaximumRetryAttempts": 3,
        "MaximumRecordAgeInSeconds": 3600,
        "ParallelizationFactor": 4,
    })


def test_overridden_starting_position_reaches_the_mapping(variants: Variants) -> None:
    variants.overridden.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"StartingPosition": "LATEST"}
    )


def test_bisect_and_batch_item_failures_stay_on_under_overrides(variants: Variants) -> None:
    variants.overridden.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "BisectBatchOnFunctionError": True,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    })


def test_empty_filters_turn_filtering_off(variants: Variants) -> None:
    variants.overridden.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"FilterCriteria": Match.absent()}
    )


def test_given_filters_replace_the_default(variants: Variants) -> None:
    variants.existing.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "FilterCriteria": {"Filters": [{"Pattern": CUSTOM_FILTER["pattern"]}]},
    })


def test_archival_off_filters_out_remove_records(variants: Variants) -> None:
    (mapping,) = variants.no_archive.find_resources("AWS::Lambda::EventSourceMapping").values()
    patterns = [json.loads(f["Pattern"])
                for f in mapping["Properties"]["FilterCriteria"]["Filters"]]
    assert [p["eventName"] for p in patterns] == [["INSERT", "MODIFY"]]


def test_overridden_function_props_reach_the_function(variants: Variants) -> None:
    variants.overridden.has_resource_properties("AWS::Lambda::Function", {
        "MemorySize": 1024, "Timeout": 120, "Architectures": ["x86_64"],
        "ReservedConcurrentExecutions": 5,
    })


def test_overridden_log_retention_reaches_the_log_group(variants: Variants) -> None:
    variants.overridden.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 7})


def test_archive_bucket_props_override_a_default_visibly(variants: Variants) -> None:
    variants.overridden.has_resource_properties("AWS::S3::Bucket", {
        "VersioningConfiguration": Match.absent(),
        "LoggingConfiguration": Match.any_value(),
        "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
    })


# --- existing resources --------------------------------------------------------------


def test_existing_bucket_creates_no_bucket(variants: Variants) -> None:
    """No archive or access-log bucket (the archive catalog has its results bucket)."""
    buckets = variants.existing.find_resources("AWS::S3::Bucket")
    assert [lid for lid in buckets if not lid.startswith("AggregatorArchiveCatalog")] == []


def test_existing_bucket_is_named_in_the_environment(variants: Variants) -> None:
    variants.existing.has_resource_properties("AWS::Lambda::Function", {
        "Environment": {"Variables": Match.object_like({
            "ARCHIVE_BUCKET_NAME": EXISTING_BUCKET, "ARCHIVE_PREFIX": "logs/",
        })},
    })


def test_existing_bucket_grant_is_limited_to_the_configured_prefix(variants: Variants) -> None:
    (statement,) = _s3_statements(variants.existing)
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


# --- a separate snapshot table -------------------------------------------------------


def test_snapshot_table_is_named_in_the_environment(variants: Variants) -> None:
    (snapshots,) = (lid for lid in variants.snapshot_table.find_resources("AWS::DynamoDB::Table")
                    if lid.startswith("Snapshots"))
    (source,) = (lid for lid in variants.snapshot_table.find_resources("AWS::DynamoDB::Table")
                 if lid.startswith("Table"))
    variants.snapshot_table.has_resource_properties("AWS::Lambda::Function", {
        "Environment": {"Variables": Match.object_like({
            "TABLE_NAME": {"Ref": source}, "SNAPSHOT_TABLE_NAME": {"Ref": snapshots},
        })},
    })


def test_snapshot_table_gets_reads_and_writes_source_table_bucket_maintenance(
    variants: Variants,
) -> None:
    template = variants.snapshot_table
    assert _item_statements(template) == [
        {"Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"], "Effect": "Allow",
         "Resource": _table_arn(template, "Snapshots")},
        {"Action": _MAINTENANCE, "Effect": "Allow", "Resource": _table_arn(template, "Table")},
    ]


def test_one_table_gets_one_statement_bucket_maintenances_covering_the_snapshots() -> None:
    template = Template.from_stack(Stack.of(_build()))
    assert _item_statements(template) == [
        {"Action": _MAINTENANCE, "Effect": "Allow", "Resource": _table_arn(template, "Table")},
    ]


def test_refill_off_leaves_the_source_table_read_only(variants: Variants) -> None:
    template = variants.no_archive
    assert _item_statements(template) == [
        {"Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"], "Effect": "Allow",
         "Resource": _table_arn(template, "Snapshots")},
    ]


# --- errors --------------------------------------------------------------------------


def _build(stream: dynamodb.StreamViewType | None = None, stack: Stack | None = None,
           **kwargs: Any) -> StreamAggregator:
    stack = stack or Stack(App(), "Errors")
    table = _table(stack, stream or dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    config = kwargs.pop("config", AggregatorConfig())
    return StreamAggregator(stack, "Aggregator", table=table, config=config, **kwargs)


def test_both_alarm_topic_and_emails_are_refused() -> None:
    stack = Stack(App(), "Errors")
    topic = sns.Topic.from_topic_arn(stack, "Topic", EXISTING_TOPIC)
    with pytest.raises(ValueError, match=r"^alarm_topic and alarm_emails are mutually"):
        _build(stack=stack, alarm_topic=topic, alarm_emails=["ops@example.com"])


def test_at_timestamp_starting_position_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^starting_position must be TRIM_HORIZON or LATEST"):
        _build(starting_position=lambda_.StartingPosition.AT_TIMESTAMP)


@pytest.mark.parametrize(("prop", "value", "message"), [
    ("alarm_emails", ["not-an-address"], r"^alarm_emails: 'not-an-address' is not an e-mail"),
    ("dashboard_name", "my dashboard", r"^dashboard_name must be 1 to 255 letters"),
    ("alarm_name_prefix", "", r"^alarm_name_prefix must be a plain string"),
])
def test_bad_alarm_prop_is_refused_by_name(prop: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _build(**{prop: value})


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
    ("reserved_concurrency", 0, r"^reserved_concurrency must be a whole number from 1"),
])
def test_out_of_range_prop_is_refused_by_name(prop: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _build(**{prop: value})


def test_a_misspelt_prop_is_refused_like_any_unexpected_keyword() -> None:
    with pytest.raises(TypeError, match=r"^StreamAggregator\(\) got unexpected keyword "
                                        r"argument\(s\): batch_sise$"):
        _build(batch_sise=10)


def test_a_function_override_owned_by_the_construct_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^function_overrides: runtime is set by the "
                                         r"construct"):
        _build(function_overrides={"runtime": lambda_.Runtime.PYTHON_3_12})


@pytest.mark.synth
def test_function_overrides_reach_the_function_and_keep_what_the_construct_sets() -> None:
    aggregator = _build(function_overrides={"description": "usage for team A"})
    template = Template.from_stack(Stack.of(aggregator))
    template.has_resource_properties("AWS::Lambda::Function", {
        "Description": "usage for team A",
        "Handler": "aggregator.handler.handler", "MemorySize": 1769,
        "LoggingConfig": Match.object_like({"LogFormat": "Text"})})
