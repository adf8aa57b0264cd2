"""The event-metrics construct and example stack: defaults, overrides, grants, alarms, checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from cfnlint.api import ManualArgs, lint_file

from infra.alarms import ALARM_KEYS, alarm_name
from infra.event_metrics import EventMetricsAggregator
from infra.stacks.event_metrics_stack import EventMetricsStack
from streamagg_engine.errors import ConfigError
from streamagg_events.config import EventMetricsConfig
from tests.infra.support import (
    CheckovReport,
    dashboard_alarms,
    dashboard_body,
    dashboard_thresholds,
)

from .conftest import EXAMPLE, STACKS


def _policy_statements(template: Template) -> list[dict[str, Any]]:
    policies = template.find_resources("AWS::IAM::Policy")
    return [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]


def test_the_mapping_bisects_reports_item_failures_and_has_a_dlq(
        templates: dict[str, Template]) -> None:
    templates[EXAMPLE].has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "StartingPosition": "TRIM_HORIZON", "BatchSize": 100,
        "BisectBatchOnFunctionError": True, "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "MaximumRetryAttempts": 10, "MaximumRecordAgeInSeconds": 21600,
        "ParallelizationFactor": 1,
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [
            Match.string_like_regexp("DeadLetterQueue"), "Arn"]}}},
        "EventSourceArn": {"Fn::GetAtt": [Match.string_like_regexp("Events"), "Arn"]},
    })
    templates[EXAMPLE].has_resource_properties("AWS::SQS::Queue", {
        "KmsMasterKeyId": Match.any_value(), "MessageRetentionPeriod": 1_209_600})


def test_overridden_props_reach_the_mapping_and_function(templates: dict[str, Template]) -> None:
    template = templates["Overridden"]
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "StartingPosition": "LATEST", "BatchSize": 500, "MaximumBatchingWindowInSeconds": 5,
        "MaximumRetryAttempts": 3, "MaximumRecordAgeInSeconds": 3600,
        "ParallelizationFactor": 4,
        "EventSourceArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/clicks"})
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "streamagg_events.handler.handler", "Timeout": 120,
        "ReservedConcurrentExecutions": 5,
        "Environment": {"Variables": Match.object_like({
            "EVENTS_METRICS_TABLE_NAME": "metrics", "EVENTS_LOOKUP_TABLE_NAME": "lookups",
            "EVENTS_ARCHIVE_BUCKET_NAME": "existing-archive", "EVENTS_WINDOWS": "daily",
            "EVENTS_ARCHIVE_PREFIX": "raw/"})}})
    template.resource_count_is("AWS::DynamoDB::Table", 0)
    template.resource_count_is("AWS::S3::Bucket", 0)
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "AlarmName": "clicks-iterator-age",
        "AlarmActions": ["arn:aws:sns:eu-west-1:123456789012:alarms"]})


def test_the_example_stream_is_encrypted_and_the_metrics_table_is_safe(
        templates: dict[str, Template]) -> None:
    template = templates[EXAMPLE]
    template.has_resource_properties("AWS::Kinesis::Stream", {
        "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
        "RetentionPeriodHours": 24})
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "BillingMode": "PAY_PER_REQUEST", "SSESpecification": {"SSEEnabled": True},
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
        "DeletionProtectionEnabled": True})
    template.has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Retain"})


def test_the_archive_bucket_has_the_secure_defaults(templates: dict[str, Template]) -> None:
    templates[EXAMPLE].has_resource_properties("AWS::S3::Bucket", {
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True,
                                           "RestrictPublicBuckets": True},
        "VersioningConfiguration": {"Status": "Enabled"},
        "LoggingConfiguration": Match.object_like({"LogFilePrefix": "archive-bucket/"}),
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}})


def test_the_function_may_do_only_what_the_pipeline_needs(
        templates: dict[str, Template]) -> None:
    statements = _policy_statements(templates[EXAMPLE])
    by_action = {json.dumps(s["Action"]): s["Resource"] for s in statements}
    tables = templates[EXAMPLE].find_resources("AWS::DynamoDB::Table")
    metrics = next(k for k in tables if k.startswith("EventMetricsMetricsTable"))
    lookup = next(k for k in tables if k.startswith("Lookups"))
    assert by_action[json.dumps(["dynamodb:PutItem", "dynamodb:UpdateItem",
                                 "dynamodb:BatchGetItem"])] == {"Fn::GetAtt": [metrics, "Arn"]}
    assert by_action['"dynamodb:BatchGetItem"'] == {"Fn::GetAtt": [lookup, "Arn"]}
    s3_resource = by_action['"s3:PutObject"']
    assert s3_resource["Fn::Join"][1][1] == "/events/*"
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str)
                                               else s["Action"])}
    assert not {a for a in actions if a.endswith("*")}
    assert {a for a in actions if a.startswith("dynamodb:")} == {
        "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchGetItem"}
    assert all(s["Effect"] == "Allow" for s in statements)
    templates[EXAMPLE].resource_count_is("AWS::IAM::ManagedPolicy", 0)


def test_every_alarm_exists_and_notifies_the_topic(templates: dict[str, Template]) -> None:
    alarms = templates[EXAMPLE].find_resources("AWS::CloudWatch::Alarm")
    names = {a["Properties"]["AlarmName"] for a in alarms.values()}
    assert names == {f"{EXAMPLE}-EventMetrics-{key}" for key in (
        "errors", "errors-warning", "duration", "duration-warning", "iterator-age",
        "iterator-age-warning", "dlq-depth", "throttles", "skipped-records", "failed-writes")}
    templates[EXAMPLE].has_resource_properties("AWS::CloudWatch::Alarm", {
        "AlarmName": f"{EXAMPLE}-EventMetrics-skipped-records",
        "Namespace": "StreamAggregator/EventMetrics", "MetricName": "RecordsSkipped"})
    assert all(a["Properties"]["AlarmActions"] for a in alarms.values())


def test_the_dashboard_shows_every_alarm_and_its_threshold_and_the_pipelines_counts(
        templates: dict[str, Template]) -> None:
    template = templates[EXAMPLE]
    prefix = f"{EXAMPLE}-EventMetrics"
    template.has_resource_properties("AWS::CloudWatch::Dashboard", {"DashboardName": prefix})
    assert dashboard_alarms(template) == [alarm_name(prefix, key) for key in ALARM_KEYS]
    assert {label for label, _ in dashboard_thresholds(template)} == {
        "errors > 1", "errors_warning > 0", "duration > 48000", "duration_warning > 30000",
        "iterator_age > 30000",
        "iterator_age_warning > 1000", "dlq_depth >= 1", "throttles >= 1",
        "skipped_records >= 1", "failed_writes >= 1"}
    text = json.dumps(dashboard_body(template))
    for metric in ("EventsCounted", "CounterTransactions", "ArchivedEvents", "BatchDuration"):
        assert f'"StreamAggregator/EventMetrics", "{metric}"' in text
    templates["Overridden"].has_resource_properties("AWS::CloudWatch::Dashboard",
                                                    {"DashboardName": "clicks"})


def test_archival_off_builds_no_bucket_and_an_empty_bucket_setting(
        templates: dict[str, Template]) -> None:
    template = templates["NoArchive"]
    template.resource_count_is("AWS::S3::Bucket", 0)
    template.has_resource_properties("AWS::Lambda::Function", {"Environment": {
        "Variables": Match.object_like({"EVENTS_ARCHIVE_BUCKET_NAME": "",
                                        "EVENTS_ENABLE_ARCHIVAL": "false"})}})


def test_cdk_nag_finds_nothing_unacknowledged(app_assembly: Path,
                                              events_assembly: Path) -> None:
    report = json.loads((events_assembly / "validation-report.json").read_text())
    assert report["pluginReports"] == []
    metadata = json.loads((app_assembly / f"{EXAMPLE}.metadata.json").read_text())
    acknowledged = {rule: reason for entries in metadata.values() for entry in entries
                    if entry["type"] == "aws:cdk:acknowledged-rules"
                    for rule, reason in entry["data"].items()}
    assert {r.removeprefix("Annotation::") for r in acknowledged} == {
        "AwsSolutions-SQS3", "AwsSolutions-S1",
        "AwsSolutions-IAM5[Resource::<EventMetricsArchiveBucket988E6C06.Arn>/events/*]"}
    assert all(len(reason.split()) >= 8 for reason in acknowledged.values())


@pytest.mark.parametrize("name", STACKS)
def test_cfn_lint_finds_no_errors(template_files: dict[str, Path], name: str) -> None:
    findings = lint_file(template_files[name],
                         ManualArgs(regions=["us-east-1"]))
    assert [(m.rule.id, m.message) for m in findings if m.rule.severity == "error"] == []


def test_checkov_fails_nothing_and_every_skip_has_a_reason(
        app_checkov: dict[str, CheckovReport]) -> None:
    report = app_checkov[EXAMPLE]
    assert report["results"]["failed_checks"] == []
    assert report["summary"]["passed"] > 30
    skipped = report["results"]["skipped_checks"]
    assert {c["check_id"] for c in skipped} == {
        "CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173", "CKV_AWS_158",
        "CKV_AWS_18", "CKV_AWS_119"}
    assert all(len(c["check_result"]["suppress_comment"].split()) >= 8 for c in skipped)


def _construct(**props: Any) -> None:
    stack = Stack(App(), "Check")
    stream = props.pop("stream", None) or kinesis.Stream.from_stream_arn(
        stack, "S", "arn:aws:kinesis:us-east-1:123456789012:stream/s")
    EventMetricsAggregator(stack, "E", stream=stream,
                           lookup_table=dynamodb.Table.from_table_name(stack, "L", "lookups"),
                           **props)


@pytest.mark.parametrize(("props", "message"), [
    ({"batch_size": 0}, "batch_size must be a whole number from 1 to 10000"),
    ({"parallelization_factor": 11}, "parallelization_factor must be"),
    ({"max_record_age": Duration.days(8)}, "max_record_age must be from 60 to 604800"),
    ({"starting_position": lambda_.StartingPosition.AT_TIMESTAMP},
     "starting_position must be TRIM_HORIZON or LATEST for a Kinesis stream"),
    ({"dashboard_name": "event metrics"}, "dashboard_name must be 1 to 255 letters"),
    ({"config": EventMetricsConfig(marker_ttl_days=2), "max_record_age": Duration.days(3)},
     r"config.marker_ttl_days \(2\) must exceed max_record_age"),
    ({"config": EventMetricsConfig(enable_archival=False),
      "archive_bucket_props": s3.BucketProps()}, "config.enable_archival is false"),
    ({"alarm_emails": ["not-an-address"]}, "alarm_emails: 'not-an-address'"),
])
def test_a_bad_prop_fails_at_synth_naming_it(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _construct(**props)


def test_a_stream_kept_longer_than_the_markers_is_refused() -> None:
    stack = Stack(App(), "Long")
    stream = kinesis.Stream(stack, "S", retention_period=Duration.days(10))
    with pytest.raises(ValueError, match=r"must exceed the stream's retention \(240 h\)"):
        _construct(stream=stream, config=EventMetricsConfig(marker_ttl_days=8))


def test_a_bad_context_setting_fails_the_example_stack_naming_it() -> None:
    app = App(context={"events_windows": "hourly,weekly"})
    with pytest.raises(ConfigError, match=r"windows \(EVENTS_WINDOWS\): unknown window"):
        EventMetricsStack(app, "Bad")


@pytest.mark.synth
def test_filters_on_event_fields_reach_the_mapping_and_none_is_the_default() -> None:
    def mapping(**props: Any) -> dict[str, Any]:
        stack = Stack(App(), "Filters")
        EventMetricsAggregator(
            stack, "E", lookup_table=dynamodb.Table.from_table_name(stack, "L", "lookups"),
            stream=kinesis.Stream.from_stream_arn(
                stack, "S", "arn:aws:kinesis:us-east-1:123456789012:stream/s"), **props)
        (found,) = Template.from_stack(stack).find_resources(
            "AWS::Lambda::EventSourceMapping").values()
        properties: dict[str, Any] = found["Properties"]
        return properties

    assert "FilterCriteria" not in mapping()
    clicks = lambda_.FilterCriteria.filter({"data": {"event_type": ["click"]}})
    assert mapping(filters=[clicks])["FilterCriteria"] == {
        "Filters": [{"Pattern": '{"data":{"event_type":["click"]}}'}]}


def test_more_than_five_filters_fail_at_synth_naming_the_prop() -> None:
    with pytest.raises(ValueError, match=r"^filters: at most 5 filters per mapping"):
        _construct(filters=[lambda_.FilterCriteria.filter({"data": {"n": [i]}})
                            for i in range(6)])
