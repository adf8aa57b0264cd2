"""The ``seed-004`` profile: seed 004's dashboard key, item shape, metrics and variables.

The template carries the document's table key and metric names in its alarms; then the real
handler, configured only by the document's variables, projects a primary table shaped as the
document says (``source_id``/``ingested_at``, its own stream) into a dashboard table keyed
``day_partition``/``ingested_at``, and the items are read back the way the document's
dashboard reads them: a query by ``day_partition``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk.assertions import Match, Template

from infra.projection import ProjectionStage
from infra.stacks.projection_stack import ProjectionStack
from local_aws.event_source_mapping import LocalEventSourceMapping, MappingSettings
from streamagg_engine.errors import ConfigError
from streamagg_projection.config import ProjectionConfig
from streamagg_projection.handler import Runtime, build_runtime, handle
from streamagg_projection.stores import WriteOutcome
from tests.moto_fixtures import LocalAws

from .support import create_tables, image, record

SEED = ProjectionConfig(profile="seed-004")
DAY = "2025-11-16"
AT = "2025-11-16T14:30:15.000Z"
LATER = "2025-11-16T18:02:00.000Z"


def _stage_template() -> Template:
    stack = Stack(App(), "SeedProjection")
    source = dynamodb.Table(
        stack, "Primary", partition_key=dynamodb.Attribute(
            name="source_id", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="ingested_at", type=dynamodb.AttributeType.STRING),
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    ProjectionStage(stack, "Projection", source_table=source, config=SEED,
                    alarm_name_prefix="stream-processor")
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def template() -> Template:
    return _stage_template()


def test_the_new_dashboard_table_is_keyed_by_day_and_ingested_at(template: Template) -> None:
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": "day_partition", "KeyType": "HASH"},
                      {"AttributeName": "ingested_at", "KeyType": "RANGE"}],
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
    })
    template.has_resource_properties("AWS::Lambda::Function", {
        "Environment": {"Variables": Match.object_like({
            "PROJECTION_PROFILE": "seed-004", "PROJECTION_SORT_KEY": "ingested_at",
            "PROJECTION_TTL_DAYS": "7"})}})


def test_the_alarms_and_dashboard_read_the_documents_metrics(template: Template) -> None:
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "AlarmName": "stream-processor-skipped-records", "Namespace": "SentimentAnalyzer",
        "MetricName": "StreamProcessorErrors", "Statistic": "Sum"})
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "AlarmName": "stream-processor-failed-writes", "Namespace": "SentimentAnalyzer",
        "MetricName": "FailedWrites"})
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    namespaces = {a["Properties"].get("Namespace") for a in alarms.values()}
    assert "StreamAggregator/Projection" not in namespaces
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for name in ("StreamProcessorSuccess", "StreamProcessorErrors", "StreamProcessorBatchSize"):
        assert f'\\"SentimentAnalyzer\\",\\"{name}\\"' in body
    assert "RecordsSkipped" not in body


def test_the_example_stack_takes_the_profile_from_the_context() -> None:
    app = App(context={"projection_profile": "seed-004"})
    template = Template.from_stack(ProjectionStack(app, "SeedExample"))
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": "day_partition", "KeyType": "HASH"},
                      {"AttributeName": "ingested_at", "KeyType": "RANGE"}]})
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "Namespace": "SentimentAnalyzer", "MetricName": "StreamProcessorErrors"})


def test_a_sort_key_the_profile_contradicts_fails_naming_both() -> None:
    with pytest.raises(ConfigError, match=r"sort_key \(PROJECTION_SORT_KEY\): 'sk' conflicts "
                       r"with profile seed-004 \(PROJECTION_PROFILE\)"):
        ProjectionConfig(profile="seed-004", sort_key="sk")


def _item(source_id: str, ingested_at: str, *, status: str = "analyzed",
          tags: list[str] | None = None) -> dict[str, Any]:
    """An item of the primary table, as the document's sample event shows it."""
    item: dict[str, Any] = {
        "source_id": {"S": source_id}, "ingested_at": {"S": ingested_at},
        "source_type": {"S": "newsapi"}, "source_url": {"S": "https://example.com/1"},
        "text_snippet": {"S": "European Union announces sweeping AI regulation..."},
        "sentiment": {"S": "positive"}, "score": {"N": "0.85"},
        "model_version": {"S": "v1.0.0"}, "status": {"S": status},
        "metadata": {"M": {"author": {"S": "Jane Smith"}}}}
    if tags:
        item["matched_tags"] = {"SS": tags}
    return item


def _day(aws: LocalAws, dashboard: str) -> list[dict[str, Any]]:
    """What the document's dashboard reads: the day's items, by ``day_partition``."""
    found = aws.ddb.query(TableName=dashboard, KeyConditionExpression="day_partition = :day",
                          ExpressionAttributeValues={":day": {"S": DAY}})
    items: list[dict[str, Any]] = found["Items"]
    assert found["Count"] == len(items)
    return items


def _emf(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    return [line for line in lines if "_aws" in line]


def test_the_document_deployment_is_projected_as_its_dashboard_reads_it(
        aws: LocalAws, capsys: pytest.CaptureFixture[str]) -> None:
    primary, dashboard, stream = create_tables(aws, sort_key="ingested_at")
    env = {"DASHBOARD_TABLE_NAME": dashboard, "TTL_DAYS": "7", "LOG_LEVEL": "INFO",
           "PROJECTION_PROFILE": "seed-004"}
    runtime = build_runtime(env, dynamodb=aws.ddb)
    assert runtime.config.dashboard_table_name == dashboard
    mapping = LocalEventSourceMapping(
        aws.streams, stream, lambda event: handle(event, runtime, now_ms=int(time.time() * 1000)),
        settings=MappingSettings(batch_size=100, retry_attempts=3),
        on_failure=aws.dlq_messages.append, clock=time.time)

    aws.ddb.put_item(TableName=primary, Item=_item("newsapi#test-123", AT, tags=["AI", "tech"]))
    aws.ddb.put_item(TableName=primary, Item=_item("newsapi#pending", LATER, status="pending"))
    mapping.drain()

    items = _day(aws, dashboard)
    assert len(items) == 3  # the document's own expectation: 1 base item + 2 tag items
    by_key = {item["ingested_at"]["S"]: item for item in items}
    assert sorted(by_key) == [AT, f"{AT}#AI", f"{AT}#tech"]
    base = by_key[AT]
    assert base["sentiment_score_combined"] == {"S": "positive#0.85"}
    assert base["matched_tags"]["SS"] == ["AI", "tech"]
    assert base["source_id"] == {"S": "newsapi#test-123"}
    ingested = int(datetime(2025, 11, 16, 14, 30, 15, tzinfo=UTC).timestamp())
    assert base["expires_at"] == {"N": str(ingested + 7 * 86_400)}
    assert "tag" not in base
    assert by_key[f"{AT}#AI"]["tag"] == {"S": "AI"}
    assert by_key[f"{AT}#tech"]["source_id"] == {"S": "newsapi#test-123"}
    (emf,) = _emf(capsys)
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SentimentAnalyzer"
    assert (emf["StreamProcessorBatchSize"], emf["StreamProcessorSuccess"],
            emf["StreamProcessorErrors"]) == (2, 3, 0)
    assert "RecordsSkipped" not in emf

    # A tag dropped and the item removed: the dashboard follows, by the document's key.
    aws.ddb.put_item(TableName=primary, Item=_item("newsapi#test-123", AT, tags=["AI"]))
    mapping.drain()
    assert sorted(i["ingested_at"]["S"] for i in _day(aws, dashboard)) == [AT, f"{AT}#AI"]
    aws.ddb.delete_item(TableName=primary, Key={"source_id": {"S": "newsapi#test-123"},
                                                  "ingested_at": {"S": AT}})
    mapping.drain()
    assert _day(aws, dashboard) == []
    assert aws.dlq_messages == []


def test_the_document_variables_stand_in_for_ours_and_a_disagreement_is_refused() -> None:
    config = ProjectionConfig.from_env({"DASHBOARD_TABLE_NAME": "sentiment-items-dashboard",
                                        "TTL_DAYS": "3", "LOG_LEVEL": "DEBUG"})
    assert (config.dashboard_table_name, config.ttl_days, config.log_level) == \
        ("sentiment-items-dashboard", 3, "DEBUG")
    same = ProjectionConfig.from_env({"TTL_DAYS": "3", "PROJECTION_TTL_DAYS": "3"})
    assert same.ttl_days == 3
    with pytest.raises(ConfigError, match=r"ttl_days \(PROJECTION_TTL_DAYS\): "
                       r"PROJECTION_TTL_DAYS='7' and TTL_DAYS='3' disagree"):
        ProjectionConfig.from_env({"TTL_DAYS": "3", "PROJECTION_TTL_DAYS": "7"})


class _Accepting:
    """A dashboard table that takes every write at once."""

    def write(self, requests: Sequence[dict[str, Any]]) -> WriteOutcome:
        return WriteOutcome(unprocessed=[], calls=1)


@pytest.mark.parametrize(("profile", "namespace", "dimensions"), [
    ("seed-004", "SentimentAnalyzer", [["FunctionName"], []]),
    ("default", "StreamAggregator/Projection", [["FunctionName"]]),
])
def test_seed_004_metrics_are_also_published_without_dimensions_as_the_document_does(
        profile: str, namespace: str, dimensions: list[list[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    config = ProjectionConfig(profile=profile)
    with ThreadPoolExecutor(1) as pool:
        handle({"Records": [record(None, image("a", tags=["AI"]))]},
               Runtime(config, _Accepting(), pool, "stream-processor"), now_ms=0)
    (emf,) = _emf(capsys)
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert (directive["Namespace"], directive["Dimensions"]) == (namespace, dimensions)
    assert emf["FunctionName"] == "stream-processor"
