"""A pipeline's CloudWatch dashboard: every alarm's metric with its thresholds drawn in.

One layout for every pipeline, derived from its metrics and alarm specs. Rows, top to
bottom: the alarms' states; error rate and duration; lag (iterator age, or a queue's
oldest message) and DLQ depth; invocations, errors and throttles; the handler's alarmed
counts; its other counts and its batch duration; then one graph for each alarm whose
metric is on none of those (a bundler's replication latency). Each graph carries the
thresholds of the alarms on its metrics as horizontal annotations (a warning level in
orange before the critical one in red); byte counts go on the right axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from .alarms import AlarmSpec, PipelineMetrics

_WIDTH = 12
_HEIGHT = 6
_RED = cloudwatch.Color.RED
_ORANGE = cloudwatch.Color.ORANGE


def create_dashboard(
    scope: Construct,
    construct_id: str,
    *,
    dashboard_name: str,
    title: str,
    metrics: PipelineMetrics,
    specs: Sequence[AlarmSpec],
    alarm_names: Mapping[str, str],
) -> cloudwatch.Dashboard:
    """The dashboard ``dashboard_name`` for the metrics and alarms of one pipeline
    (``title`` names it, as in "Stream aggregator alarms").

    The alarm-status widget refers to the alarms by ARNs built from their (stable,
    synth-time) names rather than by ``Fn::GetAtt``: the dashboard does not wait for the
    alarms, and a template deployed into moto (which skips alarms) still resolves.
    """
    stack = Stack.of(scope)
    status_alarms = [
        cloudwatch.Alarm.from_alarm_arn(scope, f"{construct_id}{key.title()}", stack.format_arn(
            service="cloudwatch", resource="alarm", resource_name=name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        ))
        for key, name in alarm_names.items()
    ]
    dashboard = cloudwatch.Dashboard(
        scope, construct_id, dashboard_name=dashboard_name,
        default_interval=Duration.hours(3),
    )
    dashboard.add_widgets(cloudwatch.AlarmStatusWidget(
        title=f"{title} alarms", alarms=status_alarms, width=2 * _WIDTH, height=4,
    ))
    widgets = [_graph(name, shown, specs) for name, shown in _graphs(metrics, specs) if shown]
    for row in range(0, len(widgets), 2):
        dashboard.add_widgets(*widgets[row:row + 2])
    return dashboard


def _graphs(metrics: PipelineMetrics,
            specs: Sequence[AlarmSpec]) -> list[tuple[str, list[cloudwatch.IMetric]]]:
    """(title, metrics) of every graph, in order."""
    alarmed = [spec for spec in specs
               if any(spec.metric is metric for metric in metrics.counts.values())]
    others: list[cloudwatch.IMetric] = [
        metric for metric in metrics.counts.values()
        if not any(spec.metric is metric for spec in alarmed)]
    graphs: list[tuple[str, list[cloudwatch.IMetric]]] = [
        ("Error rate (%)", [metrics.error_rate]),
        ("Duration (ms, maximum)", [metrics.duration]),
        (metrics.lag_title, [metrics.lag]),
        ("Dead-letter queue (messages visible)", [metrics.dlq_depth]),
        ("Invocations, errors, throttles (sum)",
         [metrics.invocations, metrics.errors, metrics.throttles]),
        (f"{_sentence([spec.key for spec in alarmed])} (sum)" if alarmed else "",
         [spec.metric for spec in alarmed]),
        ("Batch counts (sum)", others),
        ("Batch duration (ms, maximum)", [metrics.batch_duration]),
    ]
    shown = [metric for _, graph in graphs for metric in graph]
    graphs += [(_sentence([spec.key]), [spec.metric]) for spec in specs
               if not any(spec.metric is metric for metric in shown)]
    return graphs


def _graph(title: str, shown: list[cloudwatch.IMetric],
           specs: Sequence[AlarmSpec]) -> cloudwatch.GraphWidget:
    on_graph = [spec for spec in specs if any(spec.metric is metric for metric in shown)]
    on_graph.sort(key=lambda spec: not spec.key.endswith("_warning"))
    annotations = [
        cloudwatch.HorizontalAnnotation(
            value=spec.threshold,
            label=f"{spec.key} {spec.above} {spec.threshold:g}",
            color=_ORANGE if spec.key.endswith("_warning") else _RED,
        )
        for spec in on_graph
    ]
    return cloudwatch.GraphWidget(
        title=title,
        left=[metric for metric in shown if not _bytes(metric)],
        right=[metric for metric in shown if _bytes(metric)],
        left_annotations=annotations, width=_WIDTH, height=_HEIGHT,
    )


def _bytes(metric: cloudwatch.IMetric) -> bool:
    return isinstance(metric, cloudwatch.Metric) and metric.metric_name.endswith("Bytes")


def _sentence(keys: Sequence[str]) -> str:
    """``["skipped_records", "failed_writes"]`` -> ``"Skipped records and failed writes"``."""
    words = [key.replace("_", " ") for key in keys]
    text = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
    return text[:1].upper() + text[1:]
