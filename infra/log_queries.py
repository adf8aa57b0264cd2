"""Saved CloudWatch Logs Insights queries over each pipeline's structured log lines.

Every handler writes one JSON object per line (``streamagg_engine.logs``); Logs Insights
discovers their keys as fields, so the queries filter and aggregate on them directly.
Every line of an invocation carries ``function_request_id`` and ``cold_start`` under AWS
Lambda Powertools' names, so queries written for Powertools functions run here as well.
The engine's lines are the same in every pipeline, so most queries are too:

* ``errors``: every ``level = "ERROR"`` line (failed writes name their ``target``,
  ``error_code`` and how many ``records`` they carried, and the invocation's
  ``function_request_id``), plus the runtime's own lines for what the handler cannot log
  itself (``Task timed out``, ``[ERROR]`` of a crash);
* ``failed-invocations``: the ERROR lines grouped by invocation (``function_request_id``),
  newest first: how many writes each one lost and whether it was a cold start;
* ``batch-duration``: p50/p95/p99 of ``processing_time_ms`` per hour, from the
  ``batch completed`` line every batch ends with;
* ``skipped-records``: the ``skipped malformed record`` lines, with the record's id, its
  position where it has one, and ``reason``;
* ``retried-ranges`` (stream pipelines): the batches that handed records back to Lambda,
  by the first failed record: a position that keeps coming back is a range Lambda retries
  and, after ``retry_attempts``, gives up to the DLQ (what ``python -m redrive`` recovers);
* ``cold-starts``: batches and their p99/max ``processing_time_ms`` per hour, cold starts
  apart from warm invocations (``cold_start``);
* ``init-duration``: cold starts per hour and how long their initialization took
  (``@initDuration``), from the ``REPORT`` line the Lambda runtime, not the handler,
  writes after every invocation (only a cold start's carries ``Init Duration``);

and one query of each pipeline's own counts per hour: ``refill-outcomes`` (usage),
``event-outcomes`` (event metrics), ``dashboard-writes`` (projection),
``message-outcomes`` (bundler: failed, oversized and deferred messages, the ones that end
in its DLQ after ``max_receive_count`` receives).

A test runs each pipeline's real handler and checks that every field a query names is in
the lines the query selects, so a renamed log field fails the build, not the query
(``init-duration`` reads only the runtime's ``REPORT`` fields, which Logs Insights
discovers in every Lambda log group: its text is asserted instead).
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


def _errors() -> LogQuery:
    return LogQuery(
        key="errors",
        fields=("@timestamp", "level", "logger", "message", "target", "error_code",
                "retryable", "records", "error", "function_request_id", "@logStream",
                "@message"),
        filters=(f"{_ERRORS} or @message like /Task timed out|\\[ERROR\\]/",),
        sort="@timestamp desc",
        limit=200,
    )


def _failed_invocations() -> LogQuery:
    return LogQuery(
        key="failed-invocations",
        filters=(_ERRORS,),
        stats="count() as errors, sum(records) as failed_records, "
              "earliest(@timestamp) as first_error by function_request_id, cold_start",
        sort="first_error desc",
        limit=100,
    )


def _batch_duration(records: str = "records") -> LogQuery:
    """``records``: the completion line's count of what the batch held."""
    return LogQuery(
        key="batch-duration",
        filters=(_BATCH_COMPLETED,),
        stats=f"count() as batches, sum({records}) as records_processed, "
              "pct(processing_time_ms, 50) as p50_ms, pct(processing_time_ms, 95) as p95_ms, "
              "pct(processing_time_ms, 99) as p99_ms, max(processing_time_ms) as max_ms "
              "by bin(1h) as hour",
        sort="hour desc",
    )


def _skipped_records(*record_fields: str) -> LogQuery:
    return LogQuery(
        key="skipped-records",
        fields=("@timestamp", *record_fields, "reason", "@logStream"),
        filters=('message = "skipped malformed record"',),
        sort="@timestamp desc",
        limit=500,
    )


def _retried_ranges() -> LogQuery:
    return LogQuery(
        key="retried-ranges",
        filters=(_BATCH_COMPLETED, "failed_writes > 0"),
        stats="count() as failed_batches, sum(failed_writes) as writes_failed, "
              "earliest(@timestamp) as first_failure, latest(@timestamp) as last_failure "
              "by first_failed_sequence_number",
        sort="last_failure desc",
        limit=200,
    )


def _gaps() -> LogQuery:
    """The usage aggregator's lines about records never counted (``chain.py``)."""
    return LogQuery(
        key="gaps",
        fields=("@timestamp", "kind", "entity_id", "resource", "window", "window_key",
                "source", "tokens", "@logStream"),
        filters=('message = "records never counted"',),
        sort="@timestamp desc",
        limit=500,
    )


def _cold_starts() -> LogQuery:
    return LogQuery(
        key="cold-starts",
        filters=(_BATCH_COMPLETED,),
        stats="count() as batches, pct(processing_time_ms, 99) as p99_ms, "
              "max(processing_time_ms) as max_ms by bin(1h) as hour, cold_start",
        sort="hour desc",
    )


def _init_duration() -> LogQuery:
    """The runtime's ``REPORT`` lines of cold starts: ``Init Duration`` is the time spent
    starting the runtime and importing the handler module (boto3 included) before the
    first batch, which ``cold-starts``' ``processing_time_ms`` does not contain."""
    return LogQuery(
        key="init-duration",
        filters=('@type = "REPORT"', "ispresent(@initDuration)"),
        stats="count() as cold_starts, avg(@initDuration) as avg_init_ms, "
              "pct(@initDuration, 99) as p99_init_ms, max(@initDuration) as max_init_ms, "
              "max(@duration) as max_first_invocation_ms by bin(1h) as hour",
        sort="hour desc",
    )


def _hourly(key: str, sums: dict[str, str]) -> LogQuery:
    """``key``: the completion lines' ``sums`` (field -> column) per hour."""
    return LogQuery(
        key=key,
        filters=(_BATCH_COMPLETED,),
        stats=", ".join(f"sum({name}) as {column}" for name, column in sums.items())
        + " by bin(1h) as hour",
        sort="hour desc",
    )


LOG_QUERIES: tuple[LogQuery, ...] = (
    _errors(),
    _failed_invocations(),
    _batch_duration(),
    _skipped_records("event_id", "sequence_number"),
    _hourly("refill-outcomes", {"refills_written": "written",
                                "refills_lost_race": "lost_race", "refills_failed": "failed"}),
    _cold_starts(),
    _retried_ranges(),
    _gaps(),
    _init_duration(),
)
"""The usage aggregator's queries, in the order the runbook introduces them."""

EVENT_QUERIES: tuple[LogQuery, ...] = (
    _errors(),
    _failed_invocations(),
    _batch_duration(),
    _skipped_records("event_id", "sequence_number"),
    _retried_ranges(),
    _hourly("event-outcomes", {"counted_events": "counted", "already_counted": "counted_before",
                               "duplicates_in_batch": "duplicates",
                               "unknown_experiments": "unknown",
                               "skipped_malformed": "skipped"}),
    _cold_starts(),
    _init_duration(),
)
"""The event-metrics pipeline's queries."""

PROJECTION_QUERIES: tuple[LogQuery, ...] = (
    _errors(),
    _failed_invocations(),
    _batch_duration(),
    _skipped_records("event_id", "sequence_number", "source_item"),
    _retried_ranges(),
    _hourly("dashboard-writes", {"items_put": "put", "items_deleted": "deleted",
                                 "unprocessed_retries": "unprocessed",
                                 "failed_writes": "writes_failed"}),
    _cold_starts(),
    _init_duration(),
)
"""The projection stage's queries."""

BUNDLE_QUERIES: tuple[LogQuery, ...] = (
    _errors(),
    _failed_invocations(),
    _batch_duration("messages"),
    _skipped_records("event_id"),
    _hourly("message-outcomes", {"messages": "received", "bundles_written": "bundles",
                                 "objects_bundled": "bundled",
                                 "failed_writes": "writes_failed",
                                 "objects_oversized": "oversized",
                                 "objects_deferred": "deferred"}),
    _cold_starts(),
    _init_duration(),
)
"""The bundler's queries (an SQS source has no ranges: its failed messages come back
after the visibility timeout and move to the DLQ after ``max_receive_count``)."""


def query_definition_name(prefix: str, key: str) -> str:
    """``{prefix}/{key}``: the console shows the prefix as a folder."""
    return f"{prefix}/{key}"


def create_query_definitions(
    scope: Construct, *, log_group: logs.ILogGroup, name_prefix: str,
    queries: tuple[LogQuery, ...] = LOG_QUERIES,
) -> dict[str, logs.QueryDefinition]:
    """One ``AWS::Logs::QueryDefinition`` per query (the usage aggregator's by default),
    on ``log_group``."""
    group = Construct(scope, "LogQueries")
    return {
        query.key: logs.QueryDefinition(
            group,
            query.key,
            query_definition_name=query_definition_name(name_prefix, query.key),
            query_string=query.query_string(),
            log_groups=[log_group],
        )
        for query in queries
    }
