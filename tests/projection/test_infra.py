"""The example stack's template: table design, mapping, least privilege, alarms, checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk.assertions import Match, Template
from cfnlint.api import ManualArgs, lint_file

from infra.projection import ProjectionStage
from infra.stacks.projection_stack import ProjectionStack
from streamagg_engine.errors import ConfigError
from tests.infra.support import CheckovReport

from .conftest import STACK


def _resources(template: Template, kind: str) -> dict[str, Any]:
    return dict(template.find_resources(kind))


def test_dashboard_table_is_on_demand_with_pitr_ttl_and_both_indexes(
        projection_template: Template) -> None:
    projection_template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": "day_partition", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
        "GlobalSecondaryIndexes": [
            {"IndexName": "by_sentiment", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "day_partition", "KeyType": "HASH"},
                           {"AttributeName": "sentiment_score_combined", "KeyType": "RANGE"}]},
            {"IndexName": "by_tag", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "tag", "KeyType": "HASH"},
                           {"AttributeName": "ingested_at", "KeyType": "RANGE"}]},
        ],
    })


def test_source_table_streams_old_and_new_images(projection_template: Template) -> None:
    projection_template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": "source_id", "KeyType": "HASH"},
                      {"AttributeName": "ingested_at", "KeyType": "RANGE"}],
        "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
        "DeletionProtectionEnabled": True,
    })


def test_mapping_has_the_seed_batching_bisection_partial_responses_and_a_dlq(
        projection_template: Template) -> None:
    projection_template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "BatchSize": 100, "MaximumBatchingWindowInSeconds": 5,
        "BisectBatchOnFunctionError": True, "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "MaximumRetryAttempts": 10, "MaximumRecordAgeInSeconds": 21600,
        "StartingPosition": "TRIM_HORIZON",
        "DestinationConfig": {"OnFailure": {"Destination": Match.any_value()}},
    })
    projection_template.has_resource_properties("AWS::SQS::Queue", {
        "KmsMasterKeyId": Match.any_value()})


def test_filters_pass_deletions_and_moves_away_from_analysed(
        projection_template: Template) -> None:
    (mapping,) = _resources(projection_template, "AWS::Lambda::EventSourceMapping").values()
    patterns = [json.loads(f["Pattern"])
                for f in mapping["Properties"]["FilterCriteria"]["Filters"]]
    analysed = {"status": {"S": ["analyzed"]}}
    assert patterns == [
        {"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": analysed}},
        {"eventName": ["MODIFY", "REMOVE"], "dynamodb": {"OldImage": analysed}},
    ]


def test_function_may_batch_write_the_dashboard_table_and_nothing_else(
        projection_template: Template) -> None:
    (function,) = _resources(projection_template, "AWS::Lambda::Function").values()
    assert function["Properties"]["Handler"] == "streamagg_projection.handler.handler"
    env = function["Properties"]["Environment"]["Variables"]
    assert env["PROJECTION_TTL_DAYS"] == "7"
    (policy,) = _resources(projection_template, "AWS::IAM::Policy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    writes = [s for s in statements if any(
        a.startswith("dynamodb:") and a not in {
            "dynamodb:ListStreams", "dynamodb:DescribeStream", "dynamodb:GetRecords",
            "dynamodb:GetShardIterator"} for a in _list(s["Action"]))]
    assert len(writes) == 1
    assert writes[0]["Action"] == "dynamodb:BatchWriteItem"
    dashboard = next(lid for lid, r in _resources(
        projection_template, "AWS::DynamoDB::Table").items()
        if "Dashboard" in lid)
    assert writes[0]["Resource"] == {"Fn::GetAtt": [dashboard, "Arn"]}
    assert env["PROJECTION_DASHBOARD_TABLE_NAME"] == {"Ref": dashboard}
    assert not _resources(projection_template, "AWS::IAM::ManagedPolicy")


def test_alarms_cover_errors_lag_dlq_skipped_records_and_failed_writes(
        projection_template: Template) -> None:
    names = sorted(a["Properties"]["AlarmName"]
                   for a in _resources(projection_template, "AWS::CloudWatch::Alarm").values())
    assert names == sorted(f"{STACK}-Projection-{key}" for key in (
        "errors", "errors-warning", "duration", "duration-warning", "iterator-age",
        "iterator-age-warning", "dlq-depth", "throttles", "skipped-records", "failed-writes"))
    projection_template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "MetricName": "RecordsSkipped", "Namespace": "StreamAggregator/Projection"})


def test_cdk_nag_reports_nothing_unacknowledged(projection_assembly: Path) -> None:
    report = json.loads((projection_assembly / "validation-report.json").read_text())
    assert report["pluginReports"] == []


def test_cfn_lint_finds_no_error(projection_assembly: Path) -> None:
    matches = lint_file(projection_assembly / f"{STACK}.template.json",
                        ManualArgs(regions=["us-east-1"]))
    errors = [m for m in matches if m.rule.id.startswith("E")]
    warnings = {m.rule.id for m in matches if m.rule.id.startswith("W")}
    assert errors == []
    assert warnings <= {"W3005"}  # aws-cdk-lib's DependsOn next to GetAtt (see tests/infra)


def test_checkov_fails_nothing_and_every_skip_has_a_reason(
        app_checkov: dict[str, CheckovReport]) -> None:
    report = app_checkov[STACK]
    assert report["results"]["failed_checks"] == []
    assert report["summary"]["passed"] > 20
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped["check_result"]["suppress_comment"].split()) >= 8


def test_a_bad_context_setting_fails_synth_naming_it() -> None:
    app = App(context={"projection_ttl_days": "a week"})
    with pytest.raises(ConfigError, match=r"ttl_days \(PROJECTION_TTL_DAYS\)"):
        ProjectionStack(app, "Bad")


@pytest.mark.parametrize(("props", "message"), [
    ({"batch_size": 0}, "batch_size"),
    ({"parallelization_factor": 11}, "parallelization_factor"),
    ({"alarm_emails": ["not-an-address"]}, "alarm_emails"),
])
def test_bad_props_are_refused_naming_them(props: dict[str, Any], message: str) -> None:
    stack = Stack(App(), "Props")
    table = dynamodb.Table(stack, "T", partition_key=dynamodb.Attribute(
        name="source_id", type=dynamodb.AttributeType.STRING),
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    with pytest.raises(ValueError, match=message):
        ProjectionStage(stack, "P", source_table=table, **props)


def test_a_source_without_old_images_is_refused() -> None:
    stack = Stack(App(), "NoOld")
    table = dynamodb.Table(stack, "T", partition_key=dynamodb.Attribute(
        name="source_id", type=dynamodb.AttributeType.STRING),
        stream=dynamodb.StreamViewType.NEW_IMAGE)
    with pytest.raises(ValueError, match="NEW_AND_OLD_IMAGES"):
        ProjectionStage(stack, "P", source_table=table)


def _list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_an_existing_dashboard_table_and_overrides_are_used_as_given() -> None:
    stack = Stack(App(), "Existing")
    source = dynamodb.Table(stack, "T", partition_key=dynamodb.Attribute(
        name="source_id", type=dynamodb.AttributeType.STRING),
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    existing = dynamodb.Table.from_table_name(stack, "Dash", "team-dashboard")
    stage = ProjectionStage(stack, "P", source_table=source, dashboard_table=existing,
                            filters=[], parallelization_factor=4, reserved_concurrency=10,
                            alarm_name_prefix="news", dashboard_name="news-dashboard")
    template = Template.from_stack(stack)
    assert stage.dashboard_table is existing
    assert len(template.find_resources("AWS::DynamoDB::Table")) == 1  # only the source
    template.has_resource_properties("AWS::Lambda::Function", {
        "ReservedConcurrentExecutions": 10,
        "Environment": {"Variables": Match.object_like(
            {"PROJECTION_DASHBOARD_TABLE_NAME": "team-dashboard"})}})
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "ParallelizationFactor": 4, "FilterCriteria": Match.absent()})
    template.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {
        "Statement": Match.array_with([Match.object_like({
            "Action": "dynamodb:BatchWriteItem",
            "Resource": Match.object_like({"Fn::Join": Match.any_value()})})])}})
    template.has_resource_properties("AWS::CloudWatch::Dashboard",
                                     {"DashboardName": "news-dashboard"})
    template.has_resource_properties("AWS::CloudWatch::Alarm", {"AlarmName": "news-dlq-depth"})
