"""The parts the four constructs share: props checks, the bucket helpers, checkov reasons,
and that each construct's defaults are the shared ones unless it documents otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from infra import bundles, event_metrics, projection, stream_aggregator
from infra.buckets import archive_buckets, noncurrent_lifecycle_rules, secure_bucket
from infra.pipeline import FunctionProps, StreamFunctionProps

from .support import Variants


def test_a_bad_starting_position_names_the_stream_kind() -> None:
    props = StreamFunctionProps(starting_position=lambda_.StartingPosition.AT_TIMESTAMP)
    with pytest.raises(ValueError, match=r"^starting_position must be TRIM_HORIZON or LATEST "
                                         r"for a Kinesis stream, got AT_TIMESTAMP$"):
        props.check_stream(source="Kinesis stream")


def test_a_construct_may_raise_the_minimum_timeout() -> None:
    props = FunctionProps(timeout=Duration.seconds(20))
    props.check_function()
    with pytest.raises(ValueError, match=r"^timeout must be from 30 to 900 seconds, got 20"):
        props.check_function(min_timeout_seconds=30)


def test_stream_checks_include_the_function_checks() -> None:
    with pytest.raises(ValueError, match=r"^memory_size must be a whole number from 128"):
        StreamFunctionProps(memory_size=64).check_stream(source="DynamoDB stream")


@pytest.mark.parametrize(("defaults", "differences"), [
    (stream_aggregator.DEFAULTS, {"memory_size": 1769}),
    (event_metrics.DEFAULTS, {}),
    (projection.DEFAULTS, {"max_batching_window": 5}),
    (bundles.DEFAULTS, {"timeout": 300, "memory_size": 1024, "max_batching_window": 30}),
])
def test_each_construct_keeps_the_shared_defaults_but_its_documented_ones(
    defaults: Any, differences: dict[str, int]
) -> None:
    shared = StreamFunctionProps()
    for name in ("memory_size", "timeout", "architecture", "reserved_concurrency",
                 "log_retention", "batch_size", "max_batching_window"):
        value, expected = getattr(defaults, name), getattr(shared, name)
        if isinstance(value, Duration):
            value, expected = value.to_seconds(), expected.to_seconds()
        assert value == differences.get(name, expected), name


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
