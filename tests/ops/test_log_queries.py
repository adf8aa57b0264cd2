"""The saved Logs Insights queries: in each pipeline's stack, on its function's log group,
and reading fields its real handler writes."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Match, Template

from aggregator.config import AggregatorConfig
from aggregator.handler import handle
from infra import AggregatorStack, StreamAggregator
from infra.log_queries import (
    BUNDLE_QUERIES,
    EVENT_QUERIES,
    LOG_QUERIES,
    PROJECTION_QUERIES,
    LogQuery,
    query_definition_name,
)
from local_aws.bundles_harness import create_claim_table, s3_event_body, upload_workload
from local_aws.event_source_mapping import sqs_record
from local_aws.events_harness import generate_workload
from local_aws.memory import table_definition
from streamagg_bundles import handler as bundles_handler
from streamagg_bundles.config import BundlerConfig
from streamagg_events import handler as events_handler
from streamagg_events.config import EventMetricsConfig
from streamagg_projection import handler as projection_handler
from streamagg_projection.config import ProjectionConfig
from tests.factories import bucket_image, bucket_record
from tests.infra.support import ENV_NAME, source_table
from tests.moto_fixtures import LocalAws
from tests.projection.support import image, record

REPO = Path(__file__).resolve().parents[2]
STACK = "StreamAggregator-ops"
PREFIX = f"{STACK}-Aggregator"
REQUEST_ID = "8f5c0a3e-0000-4000-8000-000000000001"
PIPELINE_QUERIES = {"usage": LOG_QUERIES, "events": EVENT_QUERIES,
                    "projection": PROJECTION_QUERIES, "bundles": BUNDLE_QUERIES}
EXAMPLE_STACKS = {"events": (f"EventMetrics-{ENV_NAME}", "EventMetrics"),
                  "projection": (f"SentimentProjection-{ENV_NAME}", "Projection"),
                  "bundles": (f"Bundles-{ENV_NAME}", "Bundler")}
"""The app's example stacks and their constructs' ids (the saved queries' prefix)."""
RUNTIME_QUERY = "init-duration"
"""The one query over lines the Lambda runtime writes (``REPORT``), not the handler."""
KEYWORDS = frozenset({"fields", "filter", "stats", "sort", "limit", "by", "as", "desc", "asc",
                      "and", "or", "not", "like", "in", "display", "parse", "dedup"})


def referenced_fields(query: str) -> set[str]:
    """The log fields a query reads: not @-fields, functions, aliases, keywords or literals."""
    text = re.sub(r"/(?:\\.|[^/\\])*/", " ", query)  # regular expressions
    text = re.sub(r'"[^"]*"|\'[^\']*\'', " ", text)  # strings
    words = list(re.finditer(r"(?<![\w@.])([A-Za-z_][\w.]*)(\s*\()?", text))
    aliases = {words[i + 1].group(1) for i, word in enumerate(words[:-1])
               if word.group(1).lower() == "as"}
    return {word.group(1) for word in words
            if not word.group(2) and word.group(1).lower() not in KEYWORDS
            and word.group(1) not in aliases}


def test_the_field_parser_sees_fields_only() -> None:
    query = ('fields @timestamp, level | filter message = "a b" or @message like /x|y\\/z/ '
             '| stats pct(processing_time_ms, 95) as p95, count() as n by bin(1h) as hour '
             '| sort hour desc | limit 5')
    assert referenced_fields(query) == {"level", "message", "processing_time_ms"}


# --- the fields, against the real handler's log lines ----------------------------------

def _json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()
            if line.startswith("{") and '"_aws"' not in line]


def usage_lines(aws: LocalAws, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """One batch through the real handler that logs every kind of line the queries read.

    Snapshot writes fail (their table does not exist: ``ERROR`` lines), one record is
    malformed (``skipped malformed record``), a busy bucket is refilled, and the batch ends
    with ``batch completed``; it runs as Lambda's first invocation of a container would.
    """
    table, _ = aws.create_table("logs")
    config = AggregatorConfig(table_name=table, snapshot_table_name="no-such-table",
                              enable_archival=False)
    now_ms = int(time.time() * 1000)
    image = bucket_image("busy", tc={"rpm": 99_000}, tk={"rpm": 0}, rf=now_ms - 1_000)
    aws.ddb.put_item(TableName=table, Item=image)
    consumed = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 99_000}, entity="busy",
                             created=time.time(), tk={"rpm": 0}, rf=now_ms - 1_000)
    malformed = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}, entity="odd")
    del malformed["dynamodb"]["NewImage"]
    capsys.readouterr()
    response = handle({"Records": [consumed, malformed]}, aws.runtime(config), now_ms=now_ms,
                      request_id=REQUEST_ID, cold_start=True)
    assert response["batchItemFailures"]
    # A bucket's records given up across an hour: the next batch counts them from its
    # counters (a reconciled gap) and the hours lack them (an unplaced one).
    counted = AggregatorConfig(table_name=table, enable_archival=False, enable_refill=False)
    before, after = (bucket_record("MODIFY", {"rpm": old}, {"rpm": old + 1000}, entity="gap",
                                   created=created, sequence=sequence)
                     for old, created, sequence in ((0, 1_700_002_740, "900"),
                                                    (5000, 1_700_003_400, "990")))
    for batch in ([before], [after]):
        handle({"Records": batch}, aws.runtime(counted), now_ms=now_ms, request_id=REQUEST_ID,
               cold_start=True)
    return _json_lines(capsys)


def events_lines(aws: LocalAws, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Kinesis events (some malformed) whose counters cannot be written (no table)."""
    lookups = f"log-lookups-{id(capsys)}"
    aws.ddb.create_table(**table_definition(lookups, "pk"))
    workload = generate_workload(41, 24, users=4)
    for item in workload.lookups:
        aws.ddb.put_item(TableName=lookups, Item=item)
    config = EventMetricsConfig(metrics_table_name="no-such-table", lookup_table_name=lookups,
                                enable_archival=False, max_workers=1)
    runtime = events_handler.build_runtime(config.to_env(), dynamodb=aws.ddb)
    capsys.readouterr()
    response = events_handler.handle({"Records": workload.records}, runtime,
                                     now_ms=int(time.time() * 1000), request_id=REQUEST_ID,
                                     cold_start=True)
    assert response["batchItemFailures"]
    return _json_lines(capsys)


def projection_lines(aws: LocalAws, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Analysed items (one without its score) for a dashboard table that does not exist."""
    config = ProjectionConfig(dashboard_table_name="no-such-table", write_attempts=1,
                              max_workers=1)
    runtime = projection_handler.build_runtime(config.to_env(), dynamodb=aws.ddb)
    records = [record(None, image("newsapi#a", tags=["AI"])),
               record(None, image("newsapi#b", score=None))]
    capsys.readouterr()
    response = projection_handler.handle({"Records": records}, runtime,
                                         now_ms=int(time.time() * 1000),
                                         request_id=REQUEST_ID, cold_start=True)
    assert response["batchItemFailures"]
    return _json_lines(capsys)


def bundles_lines(aws: LocalAws, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """An object's message and a malformed one; the distribution bucket does not exist."""
    source, claims = f"log-source-{id(capsys)}", f"log-claims-{id(capsys)}"
    aws.s3.create_bucket(Bucket=source)
    create_claim_table(aws.ddb, claims)
    objects = upload_workload(aws.s3, seed=5, count=1, max_size=64, buckets=(source,))
    config = BundlerConfig(distribution_bucket_name="no-such-bucket",
                           idempotency_table_name=claims, max_workers=1)
    runtime = bundles_handler.build_runtime(config.to_env(), dynamodb=aws.ddb, s3=aws.s3)
    messages = [sqs_record("m-1", s3_event_body(objects)), sqs_record("m-2", '{"Records": [')]
    capsys.readouterr()
    response = bundles_handler.PIPELINE.handle(
        {"Records": messages}, runtime, now_ms=int(time.time() * 1000), request_id=REQUEST_ID,
        cold_start=True)
    assert response["batchItemFailures"]
    return _json_lines(capsys)


LINES = {"usage": usage_lines, "events": events_lines, "projection": projection_lines,
         "bundles": bundles_lines}


@pytest.fixture(params=sorted(LINES))
def pipeline_lines(request: pytest.FixtureRequest, aws: LocalAws,
                   capsys: pytest.CaptureFixture[str]) -> tuple[str, list[dict[str, Any]]]:
    """One batch through a pipeline's real handler that logs every kind of line its
    queries read: failed writes (ERROR), a skipped record, the completion line."""
    pipeline: str = request.param
    return pipeline, LINES[pipeline](aws, capsys)


@pytest.fixture
def handler_lines(aws: LocalAws, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return usage_lines(aws, capsys)


def selected(query: LogQuery, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The JSON lines the query's filter keeps (by message, or by level)."""
    text = query.text()
    message = re.search(r'message = "([^"]+)"', text)
    level = re.search(r'level = "([^"]+)"', text)
    assert message or level, f"{query.key} filters neither on message nor on level"
    return [line for line in lines
            if (not message or line.get("message") == message.group(1))
            and (not level or line.get("level") == level.group(1))]


def test_every_field_a_query_reads_is_in_the_lines_it_selects(
    pipeline_lines: tuple[str, list[dict[str, Any]]],
) -> None:
    pipeline, handler_lines = pipeline_lines
    for query in PIPELINE_QUERIES[pipeline]:
        if query.key == RUNTIME_QUERY:
            continue  # the runtime's REPORT lines: see test_the_init_duration_query_...
        lines = selected(query, handler_lines)
        assert lines, f"the {pipeline} handler wrote no line {query.key} selects"
        fields = referenced_fields(query.text())
        assert fields
        for line in lines:
            assert fields <= set(line), (pipeline, query.key, sorted(fields - set(line)), line)


def test_every_pipeline_has_queries_for_errors_skipped_records_and_failed_batches() -> None:
    for pipeline, queries in PIPELINE_QUERIES.items():
        keys = [q.key for q in queries]
        assert {"errors", "failed-invocations", "skipped-records", "batch-duration",
                "cold-starts"} <= set(keys), pipeline
        assert len(keys) == len(set(keys))
        if pipeline != "bundles":  # a queue has messages, not ranges
            assert "retried-ranges" in keys
    by_key = {q.key: q.text() for q in LOG_QUERIES}
    assert "filter failed_writes > 0" in by_key["retried-ranges"]
    assert "by first_failed_sequence_number" in by_key["retried-ranges"]


def test_the_init_duration_query_reads_only_the_runtimes_report_fields() -> None:
    """The handler never writes a ``REPORT`` line: the runtime does, after every
    invocation, and Logs Insights discovers its ``@type``, ``@initDuration`` (a cold
    start's ``Init Duration``) and ``@duration`` in any Lambda log group. So the test is
    the text: it reads no field of the handler's and keeps only cold starts' lines."""
    for pipeline, queries in PIPELINE_QUERIES.items():
        (query,) = [q for q in queries if q.key == RUNTIME_QUERY]
        text = query.text()
        assert text == (
            'filter @type = "REPORT"\n| filter ispresent(@initDuration)\n'
            "| stats count() as cold_starts, avg(@initDuration) as avg_init_ms, "
            "pct(@initDuration, 99) as p99_init_ms, max(@initDuration) as max_init_ms, "
            "max(@duration) as max_first_invocation_ms by bin(1h) as hour\n"
            "| sort hour desc"), pipeline
        assert referenced_fields(text) == set()


def test_the_handler_lines_cover_what_the_queries_are_about(
    handler_lines: list[dict[str, Any]],
) -> None:
    completed = next(line for line in handler_lines if line["message"] == "batch completed")
    assert completed["refills_written"] == 1
    assert completed["skipped_malformed"] == 1
    assert completed["failed_writes"] >= 1
    skipped = next(line for line in handler_lines
                   if line["message"] == "skipped malformed record")
    assert "NewImage" in skipped["reason"]
    errors = [line for line in handler_lines if line["level"] == "ERROR"]
    assert errors
    assert {(line["function_request_id"], line["cold_start"]) for line in handler_lines} == {
        (REQUEST_ID, True)}


# --- the stack ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    """The app's stack (cdk.json context) and a construct with its own alarm name prefix."""
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    app = App(context=context, outdir=str(tmp_path_factory.mktemp("ops.out")))
    AggregatorStack(app, STACK)
    custom = Stack(app, "CustomPrefix")
    StreamAggregator(custom, "Usage", table=source_table(custom), config=AggregatorConfig(),
                     alarm_name_prefix="usage")
    assembly = app.synth()
    return {name: Template.from_json(assembly.get_stack_by_name(name).template)
            for name in (STACK, "CustomPrefix")}


def _log_group(template: Template) -> str:
    (logical_id,) = template.find_resources("AWS::Logs::LogGroup").keys()
    return logical_id


@pytest.mark.parametrize("pipeline", sorted(EXAMPLE_STACKS))
def test_each_example_stack_saves_its_pipelines_queries_on_its_log_group(
    app_assembly: Path, pipeline: str,
) -> None:
    stack, construct_id = EXAMPLE_STACKS[pipeline]
    template = Template.from_json(json.loads(
        (app_assembly / f"{stack}.template.json").read_text()))
    definitions = template.find_resources("AWS::Logs::QueryDefinition")
    assert sorted(d["Properties"]["Name"] for d in definitions.values()) == sorted(
        query_definition_name(f"{stack}-{construct_id}", q.key)
        for q in PIPELINE_QUERIES[pipeline])
    for query in PIPELINE_QUERIES[pipeline]:
        template.has_resource_properties("AWS::Logs::QueryDefinition", {
            "Name": f"{stack}-{construct_id}/{query.key}",
            "QueryString": query.text(),
            "LogGroupNames": [{"Ref": _log_group(template)}],
        })


@pytest.mark.parametrize("query", LOG_QUERIES, ids=lambda q: q.key)
def test_each_query_is_saved_on_the_functions_log_group(
    templates: dict[str, Template], query: LogQuery
) -> None:
    template = templates[STACK]
    template.has_resource_properties("AWS::Logs::QueryDefinition", {
        "Name": f"{PREFIX}/{query.key}",
        "QueryString": query.text(),
        "LogGroupNames": [{"Ref": _log_group(template)}],
    })


def test_the_stack_has_exactly_the_documented_queries(templates: dict[str, Template]) -> None:
    definitions = templates[STACK].find_resources("AWS::Logs::QueryDefinition")
    assert sorted(d["Properties"]["Name"] for d in definitions.values()) == sorted(
        query_definition_name(PREFIX, q.key) for q in LOG_QUERIES)
    assert [q.key for q in LOG_QUERIES] == [
        "errors", "failed-invocations", "batch-duration", "skipped-records", "refill-outcomes",
        "cold-starts", "retried-ranges", "gaps", "init-duration"]


def test_query_names_follow_the_alarm_name_prefix(templates: dict[str, Template]) -> None:
    templates["CustomPrefix"].has_resource_properties("AWS::Logs::QueryDefinition", {
        "Name": "usage/batch-duration",
        "QueryString": Match.string_like_regexp(r"pct\(processing_time_ms, 99\)"),
    })


def test_the_queries_read_what_the_runbook_says(templates: dict[str, Template]) -> None:
    by_key = {q.key: q.text() for q in LOG_QUERIES}
    assert 'filter level = "ERROR"' in by_key["errors"]
    assert "by bin(1h)" in by_key["batch-duration"]
    for percentile in (50, 95, 99):
        assert f"pct(processing_time_ms, {percentile})" in by_key["batch-duration"]
    assert referenced_fields(by_key["skipped-records"]) >= {
        "event_id", "sequence_number", "reason"}
    assert referenced_fields(by_key["refill-outcomes"]) >= {
        "refills_written", "refills_lost_race", "refills_failed"}
    assert "by function_request_id, cold_start" in by_key["failed-invocations"]
    assert "function_request_id" in referenced_fields(by_key["errors"])
    assert by_key["cold-starts"].endswith("by bin(1h) as hour, cold_start\n| sort hour desc")
