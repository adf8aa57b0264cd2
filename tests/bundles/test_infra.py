"""``ObjectBundler`` and ``BundlesStack``: what the templates say, and that the checkers
(cdk-nag AwsSolutions, cfn-lint, checkov) find nothing unreviewed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template
from cfnlint.api import ManualArgs, lint_file

from infra.alarms import alarm_name
from infra.bundles import ALARM_KEYS, HANDLER, ObjectBundler
from streamagg_engine.errors import ConfigError
from tests.infra.support import (
    ENV_NAME,
    CheckovReport,
    dashboard_alarms,
    dashboard_body,
    dashboard_thresholds,
    stack_template,
    synth_with_nag,
)

STACK = f"Bundles-{ENV_NAME}"
"""The example stack, from the app's one synth."""
VARIANT = "BundlesVariant"
EXISTING_INGEST = "existing-ingest-bucket"
EXISTING_ARCHIVE = "existing-archive-bucket"
EXISTING_TOPIC = "arn:aws:sns:us-east-1:123456789012:existing-alarms"


@pytest.fixture(scope="module")
def variant_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A variant with existing buckets and overridden props, synthesized once with cdk-nag
    (synth raises on an unacknowledged finding); the example stack is the app's own."""
    def build(app: App) -> None:
        variant = Stack(app, VARIANT)
        ObjectBundler(
            variant, "Bundler",
            ingest_bucket=s3.Bucket.from_bucket_name(variant, "Ingest", EXISTING_INGEST),
            archive_bucket=s3.Bucket.from_bucket_name(variant, "Archive", EXISTING_ARCHIVE),
            notification_filters=[s3.NotificationKeyFilter(prefix="incoming/")],
            max_bundle_input_mb=50, batch_size=10, max_batching_window=Duration.seconds(0),
            timeout=Duration.seconds(60), max_concurrency=5, max_receive_count=3,
            alarm_topic=sns.Topic.from_topic_arn(variant, "Alarms", EXISTING_TOPIC),
            alarm_name_prefix="bundles",
        )

    return synth_with_nag(tmp_path_factory.mktemp("bundles.out"), build)


@pytest.fixture(scope="module")
def assemblies(app_assembly: Path, variant_assembly: Path) -> dict[str, Path]:
    """The assembly that holds each stack."""
    return {STACK: app_assembly, VARIANT: variant_assembly}


@pytest.fixture(scope="module")
def template(app_assembly: Path) -> Template:
    return stack_template(app_assembly, STACK)


@pytest.fixture(scope="module")
def variant(variant_assembly: Path) -> Template:
    return stack_template(variant_assembly, VARIANT)


def _only(template: Template, kind: str, props: dict[str, Any] | None = None) -> str:
    found = template.find_resources(kind, {"Properties": props} if props else None)
    assert len(found) == 1, sorted(found)
    return next(iter(found))


def _replication_role(template: Template) -> str:
    return _only(template, "AWS::IAM::Role", {"AssumeRolePolicyDocument": Match.object_like({
        "Statement": [Match.object_like({"Principal": {"Service": "s3.amazonaws.com"}})]})})


def _ref(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _objects(logical_id: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [_ref(logical_id), "/*"]]}


def test_the_distribution_bucket_replicates_to_the_archive_bucket(template: Template) -> None:
    archive = _only(template, "AWS::S3::Bucket", {"LoggingConfiguration": Match.object_like({
        "LogFilePrefix": "ArchiveBucket/"})})
    role = _replication_role(template)
    template.has_resource_properties("AWS::S3::Bucket", {
        "VersioningConfiguration": {"Status": "Enabled"},
        "ReplicationConfiguration": {"Role": _ref(role), "Rules": [{
            "Id": "archive", "Status": "Enabled", "Priority": 0, "Filter": {"Prefix": ""},
            "DeleteMarkerReplication": {"Status": "Disabled"},
            "Destination": {"Bucket": _ref(archive), "Metrics": {"Status": "Enabled"}},
        }]},
    })
    template.has_resource_properties("AWS::S3::Bucket", {
        "LoggingConfiguration": Match.object_like({"LogFilePrefix": "ArchiveBucket/"}),
        "VersioningConfiguration": {"Status": "Enabled"},
    })


def test_the_replication_role_holds_only_what_replication_needs(template: Template) -> None:
    distribution = _only(template, "AWS::S3::Bucket",
                         {"ReplicationConfiguration": Match.any_value()})
    archive = _only(template, "AWS::S3::Bucket", {"LoggingConfiguration": Match.object_like({
        "LogFilePrefix": "ArchiveBucket/"})})
    role = _replication_role(template)
    template.has_resource_properties("AWS::IAM::Policy", {
        "Roles": [{"Ref": role}],
        "PolicyDocument": {"Statement": [
            {"Effect": "Allow", "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
             "Resource": _ref(distribution)},
            {"Effect": "Allow", "Action": ["s3:GetObjectVersionForReplication",
                                           "s3:GetObjectVersionAcl",
                                           "s3:GetObjectVersionTagging"],
             "Resource": _objects(distribution)},
            {"Effect": "Allow", "Action": ["s3:ReplicateObject", "s3:ReplicateDelete",
                                           "s3:ReplicateTags"],
             "Resource": _objects(archive)},
        ]},
    })


def test_the_function_role_is_scoped_to_each_resource(template: Template) -> None:
    ingest = _only(template, "AWS::S3::Bucket", {"LoggingConfiguration": Match.object_like({
        "LogFilePrefix": "IngestBucket/"})})
    distribution = _only(template, "AWS::S3::Bucket",
                         {"ReplicationConfiguration": Match.any_value()})
    table = _only(template, "AWS::DynamoDB::Table")
    template.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement":
        Match.array_with([
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"],
             "Resource": _objects(ingest)},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": {"Fn::Join": ["", [_ref(distribution), "/bundles/*"]]}},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": _ref(distribution)},
            {"Effect": "Allow",
             "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
             "Resource": _ref(table)},
        ])}})
    assert template.find_resources("AWS::IAM::ManagedPolicy") == {}


def test_the_queue_is_encrypted_with_its_own_dlq_and_a_long_visibility(
        template: Template) -> None:
    key = _only(template, "AWS::KMS::Key")
    dlq = _only(template, "AWS::SQS::Queue", {"MessageRetentionPeriod": 1_209_600})
    template.has_resource_properties("AWS::SQS::Queue", {
        "KmsMasterKeyId": _ref(key), "VisibilityTimeout": 6 * 300,
        "MessageRetentionPeriod": 4 * 86_400,
        "RedrivePolicy": {"deadLetterTargetArn": _ref(dlq), "maxReceiveCount": 5},
    })
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True,
                                                       "KeyPolicy": {"Statement": Match.array_with([
        Match.object_like({"Principal": {"Service": "s3.amazonaws.com"},
                           "Action": ["kms:GenerateDataKey*", "kms:Decrypt"]})])}})


def test_object_created_events_notify_the_queue(template: Template) -> None:
    queue = _only(template, "AWS::SQS::Queue", {"RedrivePolicy": Match.any_value()})
    template.has_resource_properties("Custom::S3BucketNotifications", {
        "NotificationConfiguration": {"QueueConfigurations": [
            {"Events": ["s3:ObjectCreated:*"], "QueueArn": _ref(queue)}]}})


def test_the_event_source_reports_batch_item_failures(template: Template,
                                                      variant: Template) -> None:
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "FunctionResponseTypes": ["ReportBatchItemFailures"], "BatchSize": 100,
        "MaximumBatchingWindowInSeconds": 30})
    variant.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "FunctionResponseTypes": ["ReportBatchItemFailures"], "BatchSize": 10,
        "ScalingConfig": {"MaximumConcurrency": 5}})


def test_concurrency_is_capped_by_default_and_the_queue_follows_the_cap(
        template: Template) -> None:
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "streamagg_bundles.handler.handler", "ReservedConcurrentExecutions": 10})
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "ScalingConfig": {"MaximumConcurrency": 10}})


@pytest.mark.synth
def test_lifting_the_cap_leaves_both_unset_with_a_reviewed_checkov_skip() -> None:
    stack = Stack(App(), "Uncapped")
    ObjectBundler(stack, "Bundler", reserved_concurrency=None)
    template = Template.from_stack(stack)
    (function,) = [r for r in template.find_resources("AWS::Lambda::Function").values()
                   if r["Properties"].get("Handler") == HANDLER]
    assert "ReservedConcurrentExecutions" not in function["Properties"]
    assert "CKV_AWS_115" in {s["id"] for s in function["Metadata"]["checkov"]["skip"]}
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "ScalingConfig": Match.absent()})


def test_the_idempotency_table_is_on_demand_with_ttl_and_pitr(template: Template) -> None:
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "DeletionProtectionEnabled": True,
        "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"},
    })
    template.has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Retain"})


def test_the_function_runs_the_bundler_with_validated_settings(template: Template) -> None:
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "streamagg_bundles.handler.handler", "Timeout": 300,
        "EphemeralStorage": {"Size": 512},
        "Environment": {"Variables": Match.object_like({
            "BUNDLE_PREFIX": "bundles/", "MAX_BUNDLE_INPUT_MB": "100",
            "IDEMPOTENCY_TTL_DAYS": "30", "CLAIM_LEASE_SECONDS": "360",
            "DISTRIBUTION_BUCKET_NAME": {"Ref": Match.string_like_regexp("Distribution")},
            "IDEMPOTENCY_TABLE_NAME": {"Ref": Match.string_like_regexp("IdempotencyTable")},
        })},
    })


def test_alarms_watch_the_queue_the_dlq_replication_and_the_emf_counts(
        template: Template) -> None:
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) == len(ALARM_KEYS)
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "AlarmName": "Bundles-test-Bundler-queue-age",
        "MetricName": "ApproximateAgeOfOldestMessage", "Threshold": 900,
        "EvaluationPeriods": 3})
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "AlarmName": "Bundles-test-Bundler-replication-latency",
        "Namespace": "AWS/S3", "MetricName": "ReplicationLatency", "Threshold": 900,
        "Dimensions": Match.array_with([{"Name": "RuleId", "Value": "archive"}])})
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "AlarmName": "Bundles-test-Bundler-dlq-depth",
        "MetricName": "ApproximateNumberOfMessagesVisible"})
    for key, metric in (("skipped-messages", "MessagesSkipped"),
                        ("failed-writes", "FailedWrites"),
                        ("oversized-objects", "ObjectsOversized")):
        template.has_resource_properties("AWS::CloudWatch::Alarm", {
            "AlarmName": f"Bundles-test-Bundler-{key}", "Namespace": "StreamAggregator/Bundles",
            "MetricName": metric})
    for key in ("errors", "throttles"):
        template.has_resource_properties("AWS::CloudWatch::Alarm", {
            "AlarmName": f"Bundles-test-Bundler-{key}", "Namespace": "AWS/Lambda"})
    for key, share in (("duration", 0.8), ("duration-warning", 0.5)):  # of the 5 min timeout
        template.has_resource_properties("AWS::CloudWatch::Alarm", {
            "AlarmName": f"Bundles-test-Bundler-{key}", "MetricName": "Duration",
            "Statistic": "Maximum", "Threshold": 300_000 * share})


def test_the_dashboard_shows_every_alarm_its_threshold_and_the_bundlers_counts(
        template: Template, variant: Template) -> None:
    prefix = "Bundles-test-Bundler"
    template.has_resource_properties("AWS::CloudWatch::Dashboard", {"DashboardName": prefix})
    assert dashboard_alarms(template) == [alarm_name(prefix, key) for key in ALARM_KEYS]
    assert dashboard_thresholds(template) == {
        ("queue_age > 900", 900), ("dlq_depth >= 1", 1), ("replication_latency > 900", 900),
        ("errors >= 1", 1), ("duration > 240000", 240_000),
        ("duration_warning > 150000", 150_000), ("throttles >= 1", 1), ("skipped_messages >= 1", 1),
        ("failed_writes >= 1", 1), ("oversized_objects >= 1", 1)}
    graphs = {w["properties"]["title"]: w["properties"]["metrics"]
              for w in dashboard_body(template)["widgets"] if w["type"] == "metric"}
    assert graphs["Oldest message age (s, maximum)"][0][:2] == [
        "AWS/SQS", "ApproximateAgeOfOldestMessage"]
    (input_bytes,) = [m for m in graphs["Batch counts (sum)"] if "BundleInputBytes" in m]
    assert input_bytes[-1]["yAxis"] == "right"
    assert any("ObjectsBundled" in m for m in graphs["Batch counts (sum)"])
    variant.has_resource_properties("AWS::CloudWatch::Dashboard", {"DashboardName": "bundles"})


def test_existing_buckets_are_used_as_given(variant: Template) -> None:
    buckets = variant.find_resources("AWS::S3::Bucket")
    assert len(buckets) == 2  # distribution + access logs; ingest and archive exist
    variant.has_resource_properties("Custom::S3BucketNotifications", {
        "BucketName": EXISTING_INGEST,
        "NotificationConfiguration": {"QueueConfigurations": [Match.object_like({
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "incoming/"}]}}})]}})
    variant.has_resource_properties("AWS::S3::Bucket", {"ReplicationConfiguration": {
        "Rules": [Match.object_like({"Destination": Match.object_like({
            "Bucket": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"},
                                         f":s3:::{EXISTING_ARCHIVE}"]]}})})]}})
    variant.has_resource_properties("AWS::SQS::Queue", {
        "VisibilityTimeout": 360, "RedrivePolicy": Match.object_like({"maxReceiveCount": 3})})
    variant.has_resource_properties("AWS::CloudWatch::Alarm", {
        "AlarmName": "bundles-queue-age", "AlarmActions": [EXISTING_TOPIC]})
    assert variant.find_resources("AWS::SNS::Topic") == {}


@pytest.mark.parametrize(("props", "error", "message"), [
    ({"max_bundle_input_mb": 0}, ConfigError, "MAX_BUNDLE_INPUT_MB"),
    ({"bundle_prefix": "bundles"}, ConfigError, "BUNDLE_PREFIX"),
    ({"idempotency_ttl_days": 7}, ValueError, "IDEMPOTENCY_TTL_DAYS.*18 days"),
    ({"visibility_timeout": Duration.seconds(600)}, ValueError, "visibility_timeout"),
    ({"timeout": Duration.seconds(10)}, ValueError, "timeout must be from 30"),
    ({"batch_size": 100, "max_batching_window": Duration.seconds(0)}, ValueError,
     "max_batching_window"),
    ({"max_bundle_input_mb": 4096}, ValueError, "MAX_BUNDLE_INPUT_MB.*10240"),
    ({"ingest_bucket_props": s3.BucketProps(), "ingest_bucket": "x"}, ValueError,
     "mutually exclusive"),
    ({"max_concurrency": 20}, ValueError,
     r"max_concurrency \(20\) must not exceed reserved_concurrency \(10\)"),
    ({"reserved_concurrency": 1}, ValueError, "reserved_concurrency must be a whole number "
     "from 2"),
    ({"retry_attempts": 3, "parallelization_factor": 2}, TypeError,
     r"unexpected keyword argument\(s\): parallelization_factor, retry_attempts$"),
    ({"function_overrides": {"ephemeral_storage_size": None}}, ValueError,
     "function_overrides: ephemeral_storage_size is set by the construct"),
])
def test_bad_props_fail_at_synth_naming_the_setting(props: dict[str, Any], error: type,
                                                     message: str) -> None:
    stack = Stack(App(), "Bad")
    if props.get("ingest_bucket") == "x":
        props["ingest_bucket"] = s3.Bucket.from_bucket_name(stack, "Ingest", "some-bucket")
    with pytest.raises(error, match=message):
        ObjectBundler(stack, "Bundler", **props)


def test_cdk_nag_report_is_empty_and_every_acknowledgement_has_a_reason(
        app_assembly: Path) -> None:
    report = json.loads((app_assembly / "validation-report.json").read_text())
    assert report["pluginReports"] == []
    reasons = [reason for entries in
               json.loads((app_assembly / f"{STACK}.metadata.json").read_text()).values()
               for entry in entries if entry["type"] == "aws:cdk:acknowledged-rules"
               for reason in entry["data"].values()]
    assert reasons
    assert all(len(reason.split()) >= 8 for reason in reasons)


@pytest.mark.parametrize("name", [STACK, VARIANT])
def test_cfn_lint_finds_no_errors_and_only_known_warnings(assemblies: dict[str, Path],
                                                           name: str) -> None:
    """The only warnings: W3005, a DependsOn next to a GetAtt, which aws-cdk-lib adds to
    every Lambda function and to the bucket-notification custom resource."""
    path = assemblies[name] / f"{name}.template.json"
    resources = json.loads(path.read_text())["Resources"]
    findings = lint_file(path, ManualArgs(regions=["us-east-1"]))
    assert [m.message for m in findings if m.rule.severity == "error"] == []
    unexpected = [m.message for m in findings if not (
        m.rule.id == "W3005" and m.path[2] == "DependsOn"
        and resources[m.path[1]]["Type"] in {"AWS::Lambda::Function",
                                             "Custom::S3BucketNotifications"})]
    assert unexpected == []


def test_checkov_fails_nothing_and_every_skip_has_a_reason(
        app_checkov: dict[str, CheckovReport]) -> None:
    report = app_checkov[STACK]
    assert report["results"]["failed_checks"] == []
    assert report["summary"]["parsing_errors"] == 0
    for check in report["results"]["skipped_checks"]:
        assert len(check["check_result"]["suppress_comment"].split()) >= 8, check["check_id"]
