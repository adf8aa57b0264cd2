"""CloudWatch alarms for the pipelines, after the operations guide's health indicators.

One set of alarm specs for every stream-fed pipeline (:func:`alarm_specs`, worded per
pipeline), built from the metrics each one emits (:func:`pipeline_metrics`); a
pipeline with other alarms builds them with :func:`greater_than` and :func:`at_least`.

Every alarm has a stable name, ``{prefix}-{key}`` with ``_`` in the key written ``-``
(for example ``StreamAggregator-prod-Aggregator-iterator-age``), so runbooks and
dashboards can refer to it. The keys, what each alarm watches and its default:

=====================  ==========================================================  =========
key                    metric (statistic, period, datapoints)                      fires at
=====================  ==========================================================  =========
errors                 100 x Errors / Invocations (Sum, 5 min, 1 of 1)             > 1 %
errors_warning         the same error rate                                         > 0 %
duration               Duration (Maximum, 5 min, 1 of 1)                           > 80 % of
                                                                                   timeout
duration_warning       the same duration                                           > 50 % of
                                                                                   timeout
iterator_age           IteratorAge (Maximum, 1 min, 3 of 3)                        > 30 s
iterator_age_warning   IteratorAge (Maximum, 1 min, 15 of 15)                      > 1 s
dlq_depth              DLQ ApproximateNumberOfMessagesVisible (Maximum, 1 min)     >= 1
throttles              Throttles (Sum, 5 min, 1 of 1)                              >= 1
skipped_records        StreamAggregator RecordsSkipped (Sum, 5 min, 1 of 1)        >= 1
failed_writes          StreamAggregator FailedWrites (Sum, 5 min, 1 of 1)          >= 1
=====================  ==========================================================  =========

The ``*_warning`` alarms are the guide's warning bands (error rate up to 1 %, duration
50-80 % of the timeout, iterator age 1-30 s): they notify the same topic, earlier, so a
trend is seen before it becomes an outage; a threshold of None leaves a warning out. The
guide's DLQ band (1-10 messages a warning) is not one: here each DLQ message is a batch
whose counts are missing until redriven, so ``dlq_depth`` is critical from the first.

Missing data never breaches: no invocations means nothing to alarm on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .pipeline_settings import DIMENSION, DURATION

ALARM_KEYS = (
    "errors",
    "errors_warning",
    "duration",
    "duration_warning",
    "iterator_age",
    "iterator_age_warning",
    "dlq_depth",
    "throttles",
    "skipped_records",
    "failed_writes",
)
"""The keys of :attr:`StreamAggregator.alarms`, in dashboard order (a warning turned off
is left out)."""

_GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
_GE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
_SHORT = Duration.minutes(1)
_LONG = Duration.minutes(5)


@dataclass(frozen=True)
class AlarmThresholds:
    """When each alarm fires. The defaults are the operations guide's "critical" column.

    The guide's iterator-age table reads healthy < 1 s, warning < 30 s, critical > 30 s:
    ``iterator_age`` is the critical level and ``iterator_age_warning`` the start of the
    warning band, which must hold for 15 minutes in a row before it fires (a single slow
    or retried batch is not a trend).
    """

    error_rate_percent: float = 1.0
    """``errors`` fires above this share of invocations that failed, in percent."""
    error_rate_warning_percent: float | None = 0.0
    """``errors_warning`` fires above this share (0: at any failed invocation), below
    ``error_rate_percent``; None leaves the alarm out."""
    duration_percent_of_timeout: float = 80.0
    """``duration`` fires when an invocation takes longer than this share of the timeout."""
    duration_warning_percent_of_timeout: float | None = 50.0
    """``duration_warning`` fires above this share of the timeout, below
    ``duration_percent_of_timeout``; None leaves the alarm out."""
    iterator_age: Duration = Duration.seconds(30)
    """``iterator_age`` fires when the newest record of a batch was older than this."""
    iterator_age_warning: Duration = Duration.seconds(1)
    """``iterator_age_warning`` fires when that stays above this for 15 minutes."""
    dlq_depth: int = 1
    """``dlq_depth`` fires at this many messages in the dead-letter queue."""
    throttles: int = 1
    """``throttles`` fires at this many throttled invocations in 5 minutes."""
    skipped_records: int = 1
    """``skipped_records`` fires at this many malformed (skipped) records in 5 minutes."""
    failed_writes: int = 1
    """``failed_writes`` fires at this many writes that failed after retries in 5 minutes."""

    def __post_init__(self) -> None:
        if not 0 < self.error_rate_percent <= 100:
            raise ValueError(
                f"alarm_thresholds.error_rate_percent must be above 0 and at most 100, "
                f"got {self.error_rate_percent!r}"
            )
        check_warning("error_rate_warning_percent", self.error_rate_warning_percent,
                      "error_rate_percent", self.error_rate_percent, zero_allowed=True)
        check_duration_percents(self.duration_percent_of_timeout,
                                self.duration_warning_percent_of_timeout)
        check_counts(self, ("dlq_depth", "throttles", "skipped_records", "failed_writes"))
        critical = self.iterator_age.to_milliseconds()
        warning = self.iterator_age_warning.to_milliseconds()
        if not 0 < warning < critical:
            raise ValueError(
                "alarm_thresholds.iterator_age_warning must be above 0 and below "
                f"iterator_age ({warning} ms, {critical} ms)"
            )


def check_duration_percents(critical: float, warning: float | None) -> None:
    """``duration_percent_of_timeout`` (``critical``) is between 0 and 100 and
    ``duration_warning_percent_of_timeout`` (``warning``) None or below it."""
    if isinstance(critical, bool) or not isinstance(critical, int | float) \
            or not 0 < critical < 100:
        raise ValueError("alarm_thresholds.duration_percent_of_timeout must be between 0 and "
                         f"100, got {critical!r}")
    check_warning("duration_warning_percent_of_timeout", warning,
                  "duration_percent_of_timeout", critical, zero_allowed=False)


def check_warning(name: str, value: float | None, critical_name: str, critical: float, *,
                  zero_allowed: bool) -> None:
    """The warning threshold ``name`` is None (off) or a number below ``critical_name``'s
    and above 0 (or 0 itself, if ``zero_allowed``): a warning at or after the critical
    level would never say anything first."""
    if value is None:
        return
    low_ok = isinstance(value, int | float) and not isinstance(value, bool) and (
        value >= 0 if zero_allowed else value > 0)
    if not low_ok or value >= critical:
        floor = "0 or more" if zero_allowed else "above 0"
        raise ValueError(f"alarm_thresholds.{name} must be None (off) or {floor} and below "
                         f"{critical_name} ({critical!r}), got {value!r}")


def check_counts(thresholds: object, names: Iterable[str]) -> None:
    """Each count threshold ``names`` of ``thresholds`` is a whole number >= 1."""
    for name in names:
        value = getattr(thresholds, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"alarm_thresholds.{name} must be a whole number >= 1, "
                             f"got {value!r}")


@dataclass(frozen=True)
class PipelineMetrics:
    """The metrics a pipeline's alarms and dashboard read, built once (the dashboard
    finds an alarm's graph by the very metric object its spec holds)."""

    invocations: cloudwatch.Metric
    errors: cloudwatch.Metric
    error_rate: cloudwatch.MathExpression
    duration: cloudwatch.Metric
    lag: cloudwatch.Metric
    """How far the function is behind its source: a stream's iterator age (ms) or a
    queue's oldest message age (s)."""
    lag_title: str
    throttles: cloudwatch.Metric
    dlq_depth: cloudwatch.Metric
    counts: dict[str, cloudwatch.Metric]
    """The handler's own EMF counts, by metric name (``RecordsSkipped``, ...)."""
    batch_duration: cloudwatch.Metric


def pipeline_metrics(
    function: lambda_.IFunction, dead_letter_queue: sqs.IQueue, *, namespace: str,
    counts: Iterable[str], queue: sqs.IQueue | None = None,
) -> PipelineMetrics:
    """Lambda's and SQS's own metrics plus the handler's EMF metrics for ``function``.

    ``counts`` are the metric names the handler writes under ``namespace`` with
    :func:`streamagg_engine.metrics.emf_line`. The lag is the
    stream's iterator age, or the age of the oldest message of ``queue`` when an SQS
    queue feeds the function.
    """
    invocations = function.metric_invocations(statistic="Sum", period=_LONG)
    errors = function.metric_errors(statistic="Sum", period=_LONG)

    def own(name: str, statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=namespace,
            metric_name=name,
            dimensions_map={DIMENSION: function.function_name},
            statistic=statistic,
            period=_LONG,
        )

    if queue is None:
        lag = function.metric("IteratorAge", statistic="Maximum", period=_SHORT)
        lag_title = "Iterator age (ms, maximum)"
    else:
        lag = queue.metric_approximate_age_of_oldest_message(statistic="Maximum",
                                                             period=_SHORT)
        lag_title = "Oldest message age (s, maximum)"
    return PipelineMetrics(
        invocations=invocations,
        errors=errors,
        error_rate=cloudwatch.MathExpression(
            expression="IF(invocations > 0, 100 * errors / invocations, 0)",
            using_metrics={"errors": errors, "invocations": invocations},
            label="Error rate (%)",
            period=_LONG,
        ),
        duration=function.metric_duration(statistic="Maximum", period=_LONG),
        lag=lag,
        lag_title=lag_title,
        throttles=function.metric_throttles(statistic="Sum", period=_LONG),
        dlq_depth=dead_letter_queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=_SHORT
        ),
        counts={name: own(name, "Sum") for name in counts},
        batch_duration=own(DURATION, "Maximum"),
    )


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm before it is built: what it watches and when it fires."""

    key: str
    metric: cloudwatch.IMetric
    threshold: float
    comparison: cloudwatch.ComparisonOperator
    evaluation_periods: int
    description: str

    @property
    def above(self) -> str:
        return ">" if self.comparison == _GT else ">="


def greater_than(key: str, metric: cloudwatch.IMetric, threshold: float, periods: int,
                 description: str) -> AlarmSpec:
    """Fires when ``metric`` stays above ``threshold`` for ``periods`` periods in a row."""
    return AlarmSpec(key, metric, threshold, _GT, periods, description)


def at_least(key: str, metric: cloudwatch.IMetric, threshold: float,
             description: str) -> AlarmSpec:
    """Fires as soon as ``metric`` reaches ``threshold`` in one period."""
    return AlarmSpec(key, metric, threshold, _GE, 1, description)


DESCRIPTIONS: Mapping[str, str] = {
    "errors": "Share of aggregator invocations that failed (timeouts, crashes, a broken "
    "configuration). The handler never fails for bad data.",
    "iterator_age": "The stream is falling behind: the newest record of each batch was "
    "older than the critical limit for 3 minutes.",
    "iterator_age_warning": "The stream has lagged beyond the healthy range for 15 minutes.",
    "dlq_depth": "Batches gave up after their retries or record age; their records are not "
    "counted until replayed from the stream (within 24 hours).",
    "throttles": "Invocations were throttled (reserved or account concurrency): the stream "
    "waits meanwhile.",
    "skipped_records": "Malformed stream records were logged and skipped (RecordsSkipped).",
    "failed_writes": "DynamoDB/S3 writes failed after the SDK's retries (FailedWrites); the "
    "mapping retries those records.",
}
"""What each stream alarm of :data:`ALARM_KEYS` means, worded for the usage pipeline
(``duration``'s is written from its threshold)."""


def alarm_specs(
    metrics: PipelineMetrics, thresholds: AlarmThresholds, timeout: Duration,
    descriptions: Mapping[str, str] | None = None,
) -> list[AlarmSpec]:
    """Every alarm of :data:`ALARM_KEYS`, in that order (a warning turned off left out),
    for a stream-fed function whose handler writes ``RecordsSkipped`` and
    ``FailedWrites``; ``descriptions`` rewords any of :data:`DESCRIPTIONS` for another
    pipeline."""
    text = {**DESCRIPTIONS, **(descriptions or {})}
    warning_rate = thresholds.error_rate_warning_percent
    errors = [greater_than("errors", metrics.error_rate, thresholds.error_rate_percent, 1,
                           text["errors"])]
    if warning_rate is not None:
        errors.append(greater_than(
            "errors_warning", metrics.error_rate, warning_rate, 1,
            f"Invocations failed, above {warning_rate:g} % of them but not yet the critical "
            f"{thresholds.error_rate_percent:g} %: read the errors before they grow."))
    return [
        *errors,
        *duration_specs(metrics, timeout, thresholds.duration_percent_of_timeout,
                        thresholds.duration_warning_percent_of_timeout),
        greater_than("iterator_age", metrics.lag, thresholds.iterator_age.to_milliseconds(),
                     3, text["iterator_age"]),
        greater_than("iterator_age_warning", metrics.lag,
                     thresholds.iterator_age_warning.to_milliseconds(), 15,
                     text["iterator_age_warning"]),
        at_least("dlq_depth", metrics.dlq_depth, thresholds.dlq_depth, text["dlq_depth"]),
        at_least("throttles", metrics.throttles, thresholds.throttles, text["throttles"]),
        at_least("skipped_records", metrics.counts["RecordsSkipped"],
                 thresholds.skipped_records, text["skipped_records"]),
        at_least("failed_writes", metrics.counts["FailedWrites"], thresholds.failed_writes,
                 text["failed_writes"]),
    ]


def duration_specs(metrics: PipelineMetrics, timeout: Duration, percent: float,
                   warning_percent: float | None) -> list[AlarmSpec]:
    """``duration`` above ``percent`` of ``timeout`` and, unless None, ``duration_warning``
    above ``warning_percent`` of it: the guide's 80 % critical and 50-80 % warning band."""
    def above(key: str, share: float, meaning: str) -> AlarmSpec:
        return greater_than(key, metrics.duration, timeout.to_milliseconds() * share / 100, 1,
                            f"An invocation took more than {share:g} % of the function "
                            f"timeout: {meaning}")

    specs = [above("duration", percent, "the next one may time out.")]
    if warning_percent is not None:
        specs.append(above("duration_warning", warning_percent,
                           "batches are slowing down; see the duration alarm's remedies "
                           "before they reach it."))
    return specs


def alarm_name(prefix: str, key: str) -> str:
    """The stable, documented name of the alarm ``key``."""
    return f"{prefix}-{key.replace('_', '-')}"


def create_alarms(
    scope: Construct,
    specs: list[AlarmSpec],
    *,
    name_prefix: str,
    topic: sns.ITopic,
) -> dict[str, cloudwatch.Alarm]:
    """One alarm per spec, notifying ``topic`` when it fires and when it recovers."""
    action = cloudwatch_actions.SnsAction(topic)
    alarms: dict[str, cloudwatch.Alarm] = {}
    for spec in specs:
        kwargs: dict[str, Any] = {
            "metric": spec.metric,
            "threshold": spec.threshold,
            "comparison_operator": spec.comparison,
            "evaluation_periods": spec.evaluation_periods,
            "datapoints_to_alarm": spec.evaluation_periods,
            "treat_missing_data": cloudwatch.TreatMissingData.NOT_BREACHING,
            "alarm_name": alarm_name(name_prefix, spec.key),
            "alarm_description": spec.description,
        }
        alarm = cloudwatch.Alarm(scope, _construct_id(spec.key), **kwargs)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        alarms[spec.key] = alarm
    return alarms


def _construct_id(key: str) -> str:
    return "".join(part.capitalize() for part in key.split("_")) + "Alarm"
