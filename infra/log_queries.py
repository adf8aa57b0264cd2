"""Saved CloudWatch Logs Insights queries over the aggregator's structured log lines.

The handler writes one JSON object per line (``streamagg_engine.logs``); Logs Insights
discovers their keys as fields, so the queries filter and aggregate on them directly.
Every line of an invocation carries ``function_request_id`` and ``cold_start`` under AWS
Lambda Powertools' names, so queries written for Powertools functions run here as well:

* ``errors``: every ``level = "ERROR"`` line (failed writes name their ``target``,
  ``error_code`` and how many ``records`` they carried, and the invocation's
  ``function_request_id``), plus the runtime's own lines for what the handler cannot log
  itself (``Task timed out``, ``[ERROR]`` of a crash);
* ``failed-invocations``: the ERROR lines grouped by invocation (``function_request_id``),
  newest first: how many writes each one lost and whether it was a cold start;
* ``batch-duration``: p50/p95/p99 of ``processing_time_ms`` per hour, from the
  ``batch completed`` line every batch ends with;
* ``skipped-records``: the ``skipped malformed record`` lines, with ``event_id``,
  ``sequence_number`` and ``reason``;
* ``refill-outcomes``: ``refills_written`` / ``refills_lost_race`` / ``refills_failed``
  per hour, from ``batch completed``;
* ``cold-starts``: batches and their p99/max ``processing_time_ms`` per hour, cold starts
  apart from warm invocations (``cold_start``).

A test runs the real handler and checks that every field a query names is in the lines
the query selects, so a renamed log field fails the build, not the query.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_logs as logs
from constructs import Construct


@dataclass(frozen=True)
class LogQuery:
    """One saved query; its parts become an ``aws_logs.QueryString``."""

    key: str
    """The query definition's name after the prefix: ``{prefix}/{key}``."""
    fields: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    stats: str | None = None
    sort: str | None = None
    limit: int | None = None

    def query_string(self) -> logs.QueryString:
        return logs.QueryString(
            fields=list(self.fields) or None,
            filter_statements=list(self.filters) or None,
            stats_statements=[self.stats] if self.stats else None,
            sort=self.sort,
            limit=self.limit,
        )

    def text(self) -> str:
        """The query as CloudWatch Logs Insights runs it."""
        return self.query_string().to_string()


_BATCH_COMPLETED = 'message = "batch completed"'
_ERRORS = 'level = "ERROR"'

LOG_QUERIES: tuple[LogQuery, ...] = (
    LogQuery(
        key="errors",
        fields=("@timestamp", "level", "logger", "message", "target", "error_code",
                "retryable", "records", "error", "function_request_id", "@logStream",
                "@message"),
        filters=(f"{_ERRORS} or @message like /Task timed out|\\[ERROR\\]/",),
        sort="@timestamp desc",
        limit=200,
    ),
    LogQuery(
        key="failed-invocations",
        filters=(_ERRORS,),
        stats="count() as errors, sum(records) as failed_records, "
              "earliest(@timestamp) as first_error by function_request_id, cold_start",
        sort="first_error desc",
        limit=100,
    ),
    LogQuery(
        key="batch-duration",
        filters=(_BATCH_COMPLETED,),
        stats="count() as batches, sum(records) as records_processed, "
              "pct(processing_time_ms, 50) as p50_ms, pct(processing_time_ms, 95) as p95_ms, "
              "pct(processing_time_ms, 99) as p99_ms, max(processing_time_ms) as max_ms "
              "by bin(1h) as hour",
        sort="hour desc",
    ),
    LogQuery(
        key="skipped-records",
        fields=("@timestamp", "event_id", "sequence_number", "reason", "@logStream"),
        filters=('message = "skipped malformed record"',),
        sort="@timestamp desc",
        limit=500,
    ),
    LogQuery(
        key="refill-outcomes",
        filters=(_BATCH_COMPLETED,),
        stats="sum(refills_written) as written, sum(refills_lost_race) as lost_race, "
              "sum(refills_failed) as failed by bin(1h) as hour",
        sort="hour desc",
    ),
    LogQuery(
        key="cold-starts",
        filters=(_BATCH_COMPLETED,),
        stats="count() as batches, pct(processing_time_ms, 99) as p99_ms, "
              "max(processing_time_ms) as max_ms by bin(1h) as hour, cold_start",
        sort="hour desc",
    ),
)
"""The queries, in the order the runbook introduces them."""


def query_definition_name(prefix: str, key: str) -> str:
    """``{prefix}/{key}``: the console shows the prefix as a folder."""
    return f"{prefix}/{key}"


def create_query_definitions(
    scope: Construct, *, log_group: logs.ILogGroup, name_prefix: str
) -> dict[str, logs.QueryDefinition]:
    """One ``AWS::Logs::QueryDefinition`` per :data:`LOG_QUERIES` entry, on ``log_group``."""
    group = Construct(scope, "LogQueries")
    return {
        query.key: logs.QueryDefinition(
            group,
            query.key,
            query_definition_name=query_definition_name(name_prefix, query.key),
            query_string=query.query_string(),
            log_groups=[log_group],
        )
        for query in LOG_QUERIES
    }
