"""The aggregator's CloudWatch dashboard: every alarm's metric with its thresholds drawn in.

Rows, top to bottom: the alarms' states; error rate and duration; iterator age and DLQ
depth; invocations, errors and throttles; the aggregator's own record counts and its
batch duration. Each alarmed graph carries its threshold as a horizontal annotation
(the iterator-age graph both the warning and the critical level).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from infra.alarms import AggregatorMetrics, AlarmSpec

_WIDTH = 12
_HEIGHT = 6
_RED = cloudwatch.Color.RED
_ORANGE = cloudwatch.Color.ORANGE


def create_dashboard(
    scope: Construct,
    construct_id: str,
    *,
    dashboard_name: str,
    metrics: AggregatorMetrics,
    specs: list[AlarmSpec],
    alarm_names: Mapping[str, str],
) -> cloudwatch.Dashboard:
    """The dashboard ``dashboard_name`` for the metrics and alarms of one aggregator.

    The alarm-status widget refers to the alarms by ARNs built from their (stable,
    synth-time) names rather than by ``Fn::GetAtt``: the dashboard does not wait for the
    alarms, and a template deployed into moto (which skips alarms) still resolves.
    """
    by_key = {spec.key: spec for spec in specs}
    stack = Stack.of(scope)
    status_alarms = [
        cloudwatch.Alarm.from_alarm_arn(scope, f"{construct_id}{key.title()}", stack.format_arn(
            service="cloudwatch", resource="alarm", resource_name=name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        ))
        for key, name in alarm_names.items()
    ]

    def line(key: str, *, warning: bool = False) -> cloudwatch.HorizontalAnnotation:
        spec = by_key[key]
        return cloudwatch.HorizontalAnnotation(
            value=spec.threshold,
            label=f"{key} {spec.above} {spec.threshold:g}",
            color=_ORANGE if warning else _RED,
        )

    def graph(title: str, left: list[cloudwatch.IMetric],
              annotations: list[cloudwatch.HorizontalAnnotation] | None = None,
              right: list[cloudwatch.IMetric] | None = None) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=title, left=left, right=right or [], left_annotations=annotations or [],
            width=_WIDTH, height=_HEIGHT,
        )

    counts = metrics.counts
    dashboard = cloudwatch.Dashboard(
        scope, construct_id, dashboard_name=dashboard_name,
        default_interval=Duration.hours(3),
    )
    dashboard.add_widgets(cloudwatch.AlarmStatusWidget(
        title="Aggregator alarms", alarms=status_alarms, width=2 * _WIDTH, height=4,
    ))
    dashboard.add_widgets(
        graph("Error rate (%)", [metrics.error_rate], [line("errors")]),
        graph("Duration (ms, maximum)", [metrics.duration], [line("duration")]),
    )
    dashboard.add_widgets(
        graph("Iterator age (ms, maximum)", [metrics.iterator_age],
              [line("iterator_age_warning", warning=True), line("iterator_age")]),
        graph("Dead-letter queue (messages visible)", [metrics.dlq_depth],
              [line("dlq_depth")]),
    )
    dashboard.add_widgets(
        graph("Invocations, errors, throttles (sum)",
              [metrics.invocations, metrics.errors, metrics.throttles],
              [line("throttles")]),
        graph("Skipped records and failed writes (sum)",
              [counts["RecordsSkipped"], counts["FailedWrites"]],
              [line("skipped_records"), line("failed_writes")]),
    )
    dashboard.add_widgets(
        graph("Records (sum)", [counts[name] for name in counts
                                if name not in {"RecordsSkipped", "FailedWrites"}]),
        graph("Batch duration (ms, maximum)", [metrics.batch_duration]),
    )
    return dashboard
