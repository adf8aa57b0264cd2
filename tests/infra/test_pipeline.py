"""The parts the four constructs share: props checks, the bucket helpers, checkov reasons,
and that each construct's defaults are the shared ones unless it documents otherwise."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from infra import bundles, event_metrics, projection, stream_aggregator
from infra.buckets import archive_buckets, noncurrent_lifecycle_rules, secure_bucket
from infra.props import (
    AlarmProps,
    AlarmSettings,
    FunctionProps,
    FunctionSettings,
    QueueMappingProps,
    QueuePipelineProps,
    QueueSettings,
    StreamMappingProps,
    StreamPipelineProps,
    StreamSettings,
    resolve,
)

from .support import Variants


def test_a_bad_starting_position_names_the_stream_kind() -> None:
    props = StreamSettings(starting_position=lambda_.StartingPosition.AT_TIMESTAMP)
    with pytest.raises(ValueError, match=r"^starting_position must be TRIM_HORIZON or LATEST "
                                         r"for a Kinesis stream, got AT_TIMESTAMP$"):
        props.check_stream(source="Kinesis stream")


def test_a_construct_may_raise_the_minimum_timeout() -> None:
    props = FunctionSettings(timeout=Duration.seconds(20))
    props.check_function()
    with pytest.raises(ValueError, match=r"^timeout must be from 30 to 900 seconds, got 20"):
        props.check_function(min_timeout_seconds=30)


def test_stream_checks_include_the_function_checks() -> None:
    with pytest.raises(ValueError, match=r"^memory_size must be a whole number from 128"):
        StreamSettings(memory_size=64).check_stream(source="DynamoDB stream")


@pytest.mark.parametrize(("defaults", "differences"), [
    (stream_aggregator.DEFAULTS, {"memory_size": 1769}),
    (event_metrics.DEFAULTS, {}),
    (projection.DEFAULTS, {"max_batching_window": 5}),
    (bundles.DEFAULTS, {"timeout": 300, "memory_size": 1024, "max_batching_window": 30,
                        "reserved_concurrency": 10}),
])
def test_each_construct_keeps_the_shared_defaults_but_its_documented_ones(
    defaults: Any, differences: dict[str, int]
) -> None:
    shared = StreamSettings()
    for name in ("memory_size", "timeout", "architecture", "reserved_concurrency",
                 "log_retention", "batch_size", "max_batching_window"):
        value, expected = getattr(defaults, name), getattr(shared, name)
        if isinstance(value, Duration):
            value, expected = value.to_seconds(), expected.to_seconds()
        assert value == differences.get(name, expected), name


@pytest.mark.parametrize(("props", "settings"), [
    (FunctionProps, FunctionSettings), (AlarmProps, AlarmSettings),
    (StreamPipelineProps, StreamSettings), (QueuePipelineProps, QueueSettings),
])
def test_each_keyword_set_has_exactly_the_settings_that_hold_its_defaults(
        props: type, settings: type) -> None:
    assert set(props.__annotations__) == {f.name for f in dataclasses.fields(settings)}


def test_a_queue_takes_no_stream_mapping_props() -> None:
    stream_only = set(StreamMappingProps.__annotations__) - set(QueueMappingProps.__annotations__)
    assert stream_only == {"starting_position", "retry_attempts", "max_record_age",
                           "parallelization_factor", "filters"}
    with pytest.raises(TypeError, match=r"^ObjectBundler\(\) got unexpected keyword "
                                        r"argument\(s\): max_record_age, retry_attempts$"):
        resolve("ObjectBundler", QueueSettings(), {"retry_attempts": 3, "batch_size": 5,
                                                   "max_record_age": Duration.hours(1)},
                QueuePipelineProps)


def test_given_props_replace_only_their_own_defaults() -> None:
    settings = resolve("X", StreamSettings(memory_size=1769), {"batch_size": 7},
                       StreamPipelineProps)
    assert (settings.batch_size, settings.memory_size) == (7, 1769)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"handler": "x.y.z"}, r"handler is set by the construct \(the pipeline's entry point\)"),
    ({"environment": {}, "role": None},
     r"environment is set by the construct .*; role is set by the construct"),
    ({"reserved_concurrent_executions": 3},
     r"reserved_concurrent_executions is the prop reserved_concurrency"),
    ({"tracin": "Active"}, r"tracin is not a lambda_.Function setting"),
])
def test_function_overrides_refuse_what_the_construct_owns_naming_it(
        overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^function_overrides: " + message):
        FunctionSettings(function_overrides=overrides).check_function()


def test_a_construct_may_own_more_function_settings() -> None:
    settings = FunctionSettings(function_overrides={"ephemeral_storage_size": 1})
    settings.check_function()
    with pytest.raises(ValueError, match=r"ephemeral_storage_size is set by the construct"):
        settings.check_function(owned=("ephemeral_storage_size",))


@pytest.mark.parametrize(("filters", "error", "message"), [
    ([{"pattern": "{}"}] * 6, ValueError, r"^filters: at most 5 filters per mapping, got 6"),
    ([{"pattern": "[1]"}], TypeError, r"^filters\[0\] must be a lambda_.FilterCriteria"),
    (["eventName"], TypeError, r"^filters\[0\] must be"),
])
def test_bad_filters_are_refused_naming_them(filters: list[Any], error: type,
                                             message: str) -> None:
    with pytest.raises(error, match=message):
        StreamSettings(filters=filters).check_stream(source="Kinesis stream")


def _bucket_template(**kwargs: Any) -> Template:
    stack = Stack(App(), "Buckets")
    logs = s3.Bucket.from_bucket_name(stack, "Logs", "shared-logs")
    secure_bucket(stack, "Bucket", lifecycle_rules=noncurrent_lifecycle_rules(),
                  access_logs=logs, access_logs_prefix="bucket/", **kwargs)
    return Template.from_stack(stack)


def test_a_new_bucket_has_the_secure_defaults_and_logs_to_the_given_bucket() -> None:
    _bucket_template(props=None).has_resource("AWS::S3::Bucket", {
        "DeletionPolicy": "Retain",
        "Properties": Match.object_like({
            "VersioningConfiguration": {"Status": "Enabled"},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "LoggingConfiguration": {"DestinationBucketName": "shared-logs",
                                     "LogFilePrefix": "bucket/"},
        }),
    })


def test_the_callers_props_override_a_default_and_the_construct_overrides_them() -> None:
    suspended = _bucket_template(props=s3.BucketProps(versioned=False))
    assert "VersioningConfiguration" not in next(iter(
        suspended.find_resources("AWS::S3::Bucket").values()))["Properties"]
    required = _bucket_template(props=s3.BucketProps(versioned=False), versioned=True)
    required.has_resource_properties("AWS::S3::Bucket", {
        "VersioningConfiguration": {"Status": "Enabled"}})


def test_the_callers_log_destination_replaces_the_constructs() -> None:
    stack = Stack(App(), "Buckets")
    own = s3.Bucket.from_bucket_name(stack, "Own", "own-logs")
    archive, logs = archive_buckets(stack, enabled=True, bucket=None,
                                    props=s3.BucketProps(server_access_logs_bucket=own))
    assert archive is not None
    assert logs is None
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::S3::Bucket", 1)
    template.has_resource_properties("AWS::S3::Bucket", {
        "LoggingConfiguration": {"DestinationBucketName": "own-logs"}})


def test_a_reserved_concurrency_drops_the_concurrency_skip(variants: Variants) -> None:
    def skips(template: Template) -> set[str]:
        (function,) = template.find_resources("AWS::Lambda::Function").values()
        return {skip["id"] for skip in function["Metadata"]["checkov"]["skip"]}

    assert skips(variants.existing) == {
        "CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"}
    assert skips(variants.overridden) == {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"}
