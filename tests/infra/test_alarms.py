"""Alarms and dashboard: each default alarm, each override, the dashboard's thresholds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk.assertions import Match, Template

from infra import StreamAggregator
from infra.alarms import ALARM_KEYS, AlarmThresholds, alarm_name
from infra.bundles import BundlerAlarmThresholds

from .support import (
    EXISTING_TOPIC,
    STACK_NAME,
    Variants,
    dashboard_alarms,
    dashboard_body,
    dashboard_thresholds,
)

PREFIX = f"{STACK_NAME}-Aggregator"
FUNCTION = {"Name": "FunctionName", "Value": {"Ref": "AggregatorFunction65A1DE15"}}

# key: (namespace, metric, statistic, period, threshold, comparison, datapoints)
DEFAULT_ALARMS: dict[str, tuple[str, str, str, int, float, str, int]] = {
    "duration": ("AWS/Lambda", "Duration", "Maximum", 300, 48_000, "GreaterThanThreshold", 1),
    "duration_warning": ("AWS/Lambda", "Duration", "Maximum", 300, 30_000,
                         "GreaterThanThreshold", 1),
    "iterator_age": ("AWS/Lambda", "IteratorAge", "Maximum", 60, 30_000,
                     "GreaterThanThreshold", 3),
    "iterator_age_warning": ("AWS/Lambda", "IteratorAge", "Maximum", 60, 1_000,
                             "GreaterThanThreshold", 15),
    "throttles": ("AWS/Lambda", "Throttles", "Sum", 300, 1,
                  "GreaterThanOrEqualToThreshold", 1),
    "skipped_records": ("StreamAggregator", "RecordsSkipped", "Sum", 300, 1,
                        "GreaterThanOrEqualToThreshold", 1),
    "failed_writes": ("StreamAggregator", "FailedWrites", "Sum", 300, 1,
                      "GreaterThanOrEqualToThreshold", 1),
}


def _alarm(template: Template, name: str) -> dict[str, Any]:
    found = template.find_resources("AWS::CloudWatch::Alarm", {
        "Properties": {"AlarmName": name},
    })
    (alarm,) = found.values()
    props: dict[str, Any] = alarm["Properties"]
    return props


def test_alarm_keys_are_the_documented_ones() -> None:
    assert ALARM_KEYS == (
        "errors", "errors_warning", "duration", "duration_warning", "iterator_age",
        "iterator_age_warning", "dlq_depth",
        "throttles", "skipped_records", "failed_writes",
    )


def test_every_alarm_has_its_stable_name(app_template: Template) -> None:
    names = {a["Properties"]["AlarmName"]
             for a in app_template.find_resources("AWS::CloudWatch::Alarm").values()}
    assert names == {f"{PREFIX}-{key.replace('_', '-')}" for key in ALARM_KEYS}


@pytest.mark.parametrize("key", sorted(DEFAULT_ALARMS))
def test_default_alarm_watches_its_metric_at_its_threshold(
    app_template: Template, key: str
) -> None:
    namespace, metric, statistic, period, threshold, comparison, points = DEFAULT_ALARMS[key]
    alarm = _alarm(app_template, alarm_name(PREFIX, key))
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == (
        namespace, metric, statistic, period)
    assert alarm["Dimensions"] == [FUNCTION]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (threshold, comparison)
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (points, points)
    assert alarm["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize(("key", "threshold"), [("errors", 1), ("errors_warning", 0)])
def test_errors_alarms_are_the_error_rate_above_one_percent_and_above_none(
    app_template: Template, key: str, threshold: float
) -> None:
    """The guide's bands: critical above 1 %, warning from the first failed invocation."""
    alarm = _alarm(app_template, alarm_name(PREFIX, key))
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
        threshold, "GreaterThanThreshold")
    expression, *inputs = alarm["Metrics"]
    assert expression["Expression"] == "IF(invocations > 0, 100 * errors / invocations, 0)"
    assert {(m["Id"], m["MetricStat"]["Metric"]["MetricName"], m["MetricStat"]["Stat"],
             m["MetricStat"]["Period"]) for m in inputs} == {
        ("errors", "Errors", "Sum", 300), ("invocations", "Invocations", "Sum", 300)}


def test_dlq_depth_alarm_fires_at_one_message(app_template: Template) -> None:
    alarm = _alarm(app_template, f"{PREFIX}-dlq-depth")
    (queue_id,) = app_template.find_resources("AWS::SQS::Queue")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
        1, "GreaterThanOrEqualToThreshold")


def test_alarms_notify_the_topic_on_alarm_and_on_recovery(app_template: Template) -> None:
    (topic_id,) = app_template.find_resources("AWS::SNS::Topic")
    for alarm in app_template.find_resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["Properties"]["OKActions"] == [{"Ref": topic_id}]


def test_every_alarm_is_described(app_template: Template) -> None:
    for alarm in app_template.find_resources("AWS::CloudWatch::Alarm").values():
        assert len(alarm["Properties"]["AlarmDescription"]) > 20


# --- dashboard -----------------------------------------------------------------------


def test_dashboard_is_named_after_the_alarm_prefix(app_template: Template) -> None:
    app_template.has_resource_properties(
        "AWS::CloudWatch::Dashboard", {"DashboardName": PREFIX}
    )


def test_dashboard_lists_every_alarm(app_template: Template) -> None:
    assert dashboard_alarms(app_template) == [alarm_name(PREFIX, key) for key in ALARM_KEYS]


def test_dashboard_draws_the_warning_level_before_the_critical_one(
    app_template: Template
) -> None:
    (lag,) = [w["properties"] for w in dashboard_body(app_template)["widgets"]
              if w["properties"].get("title") == "Iterator age (ms, maximum)"]
    assert [(a["label"], a["color"]) for a in lag["annotations"]["horizontal"]] == [
        ("iterator_age_warning > 1000", "#ff7f0e"), ("iterator_age > 30000", "#d62728")]
    (duration,) = [w["properties"] for w in dashboard_body(app_template)["widgets"]
                   if w["properties"].get("title") == "Duration (ms, maximum)"]
    assert [(a["label"], a["color"]) for a in duration["annotations"]["horizontal"]] == [
        ("duration_warning > 30000", "#ff7f0e"), ("duration > 48000", "#d62728")]


def test_dashboard_draws_every_alarm_threshold(app_template: Template) -> None:
    assert dashboard_thresholds(app_template) == {
        ("errors > 1", 1), ("errors_warning > 0", 0), ("duration > 48000", 48_000),
        ("duration_warning > 30000", 30_000),
        ("iterator_age_warning > 1000", 1_000), ("iterator_age > 30000", 30_000),
        ("dlq_depth >= 1", 1), ("throttles >= 1", 1), ("skipped_records >= 1", 1),
        ("failed_writes >= 1", 1),
    }


def test_dashboard_graphs_the_aggregators_own_metrics(app_template: Template) -> None:
    text = json.dumps(dashboard_body(app_template))
    for metric in ("RecordsProcessed", "RecordsCounted", "SnapshotWrites", "ArchivedRecords",
                   "RefillsWritten", "BatchDuration", "RecordsSkipped", "FailedWrites"):
        assert f'"StreamAggregator", "{metric}"' in text


# --- overrides -----------------------------------------------------------------------


@pytest.mark.parametrize(("key", "threshold"), [
    ("errors", 5), ("errors_warning", 2), ("duration", 60_000), ("duration_warning", 30_000),
    ("iterator_age", 300_000),
    ("iterator_age_warning", 60_000), ("dlq_depth", 10), ("throttles", 3),
    ("skipped_records", 2), ("failed_writes", 4),
])
def test_overridden_thresholds_and_prefix_reach_the_alarms(
    variants: Variants, key: str, threshold: float
) -> None:
    """50 % of the overridden 120 s timeout is 60 s, 25 % is 30 s."""
    assert _alarm(variants.overridden, alarm_name("usage", key))["Threshold"] == threshold


def test_overridden_dashboard_name(variants: Variants) -> None:
    variants.overridden.has_resource_properties(
        "AWS::CloudWatch::Dashboard", {"DashboardName": "usage-dashboard"}
    )


def test_alarm_emails_subscribe_to_the_new_topic(variants: Variants) -> None:
    (topic_id,) = variants.overridden.find_resources("AWS::SNS::Topic")
    for address in ("ops@example.com", "oncall@example.com"):
        variants.overridden.has_resource_properties("AWS::SNS::Subscription", {
            "Protocol": "email", "Endpoint": address, "TopicArn": {"Ref": topic_id},
        })


def test_existing_topic_is_notified_and_no_topic_is_created(variants: Variants) -> None:
    variants.existing.resource_count_is("AWS::SNS::Topic", 0)
    variants.existing.has_resource_properties("AWS::CloudWatch::Alarm", {
        "AlarmName": "ExistingResources-Aggregator-errors",
        "AlarmActions": [EXISTING_TOPIC], "OKActions": [EXISTING_TOPIC],
    })


def test_existing_topic_gets_no_cloudwatch_key_grant(variants: Variants) -> None:
    variants.existing.has_resource_properties("AWS::KMS::Key", {"KeyPolicy": {
        "Statement": Match.not_(Match.array_with([Match.object_like({
            "Sid": "AllowCloudWatchAlarmsToPublish"})])),
    }})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"error_rate_percent": 0}, r"error_rate_percent must be above 0"),
    ({"duration_percent_of_timeout": 100}, r"duration_percent_of_timeout must be between"),
    ({"error_rate_warning_percent": 1}, r"error_rate_warning_percent must be None \(off\) "
     r"or 0 or more and below error_rate_percent \(1.0\), got 1"),
    ({"error_rate_warning_percent": -1}, r"error_rate_warning_percent must be None"),
    ({"duration_percent_of_timeout": 40},
     r"duration_warning_percent_of_timeout must be None \(off\) or above 0 and below "
     r"duration_percent_of_timeout \(40\), got 50.0"),
    ({"duration_warning_percent_of_timeout": 0}, r"duration_warning_percent_of_timeout"),
    ({"dlq_depth": 0}, r"dlq_depth must be a whole number >= 1"),
    ({"throttles": 1.5}, r"throttles must be a whole number >= 1"),
    ({"iterator_age_warning": Duration.minutes(1)}, r"iterator_age_warning must be above 0"),
])
def test_bad_thresholds_are_refused_by_name(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlarmThresholds(**kwargs)


def test_warnings_turned_off_leave_their_alarms_out() -> None:
    stack = Stack(App(), "NoWarnings")
    table = dynamodb.Table(
        stack, "Table", partition_key=dynamodb.Attribute(
            name="pk", type=dynamodb.AttributeType.STRING),
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    usage = StreamAggregator(stack, "Usage", table=table, alarm_thresholds=AlarmThresholds(
        error_rate_warning_percent=None, duration_warning_percent_of_timeout=None))
    assert tuple(usage.alarms) == tuple(
        key for key in ALARM_KEYS if key not in {"errors_warning", "duration_warning"})
    names = {a["Properties"]["AlarmName"] for a in
             Template.from_stack(stack).find_resources("AWS::CloudWatch::Alarm").values()}
    assert names == {alarm_name("NoWarnings-Usage", key) for key in usage.alarms}


def test_bundler_duration_warning_must_stay_below_its_critical_level() -> None:
    with pytest.raises(ValueError, match=r"duration_warning_percent_of_timeout must be None "
                       r"\(off\) or above 0 and below duration_percent_of_timeout \(90\)"):
        BundlerAlarmThresholds(duration_percent_of_timeout=90,
                               duration_warning_percent_of_timeout=95)
