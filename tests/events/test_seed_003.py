"""Seed 003's profile: the construct synthesized as the document's deployment (table keys
``partition_key``/``sort_key``, table ``event-aggregations``, bucket ``event-archive``,
its variable names), and the function it configures run on moto against that table and
bucket, read back by the document's keys."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk.assertions import Template

from infra.event_metrics import HANDLER, EventMetricsAggregator
from infra.stacks.event_metrics_stack import EventMetricsStack
from local_aws.events_harness import generate_workload, read_counters
from local_aws.memory import table_definition
from local_aws.server import MotoServer, client
from streamagg_engine.errors import ConfigError
from streamagg_events.config import EventMetricsConfig
from streamagg_events.handler import build_runtime, handle

from .conftest import SEED_003, SEED_003_LOOKUPS

TABLE, BUCKET = "event-aggregations", "event-archive"
KEYS = ("partition_key", "sort_key")
COUNTER_WRITES = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchGetItem"]


def _function(template: Template) -> dict[str, Any]:
    (function,) = [f["Properties"] for f in
                   template.find_resources("AWS::Lambda::Function").values()
                   if f["Properties"].get("Handler") == HANDLER]
    found: dict[str, Any] = function
    return found


def _env(template: Template) -> dict[str, Any]:
    variables: dict[str, Any] = _function(template)["Environment"]["Variables"]
    return variables


def test_the_function_runs_as_the_documents_deployment(templates: dict[str, Template]) -> None:
    env = _env(templates[SEED_003])
    assert {name: env[name] for name in (
        "EVENTS_PROFILE", "EVENTS_KEY_ATTRIBUTES", "EVENTS_METRICS_TABLE_NAME",
        "DYNAMODB_TABLE", "EVENTS_ARCHIVE_BUCKET_NAME", "S3_BUCKET",
        "EVENTS_LOOKUP_TABLE_NAME")} == {
        "EVENTS_PROFILE": "seed-003", "EVENTS_KEY_ATTRIBUTES": "partition_key,sort_key",
        "EVENTS_METRICS_TABLE_NAME": TABLE, "DYNAMODB_TABLE": TABLE,
        "EVENTS_ARCHIVE_BUCKET_NAME": BUCKET, "S3_BUCKET": BUCKET,
        "EVENTS_LOOKUP_TABLE_NAME": SEED_003_LOOKUPS}
    assert "DLQ_URL" not in env
    assert "DYNAMODB_TABLE" not in _env(templates["Overridden"])


def test_the_function_may_write_the_existing_table_and_put_to_the_existing_bucket(
        templates: dict[str, Template]) -> None:
    policies = templates[SEED_003].find_resources("AWS::IAM::Policy").values()
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    resources = {json.dumps(s["Action"]): json.dumps(s["Resource"]) for s in statements}
    assert resources[json.dumps(COUNTER_WRITES)].endswith(f':table/{TABLE}"]]}}')
    assert resources[json.dumps("dynamodb:BatchGetItem")].endswith(
        f':table/{SEED_003_LOOKUPS}"]]}}')
    assert f"{BUCKET}/events/*" in resources[json.dumps("s3:PutObject")]


def test_a_new_table_under_the_profile_has_the_documents_keys() -> None:
    stack = EventMetricsStack(App(context={"events_profile": "seed-003"}), "Seed003Example")
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [{"AttributeName": "partition_key", "KeyType": "HASH"},
                      {"AttributeName": "sort_key", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "partition_key", "AttributeType": "S"},
                                 {"AttributeName": "sort_key", "AttributeType": "S"}]})
    env = _env(template)
    assert env["DYNAMODB_TABLE"] == env["EVENTS_METRICS_TABLE_NAME"]
    assert env["DYNAMODB_TABLE"]["Ref"].startswith("EventMetricsMetricsTable")
    assert env["S3_BUCKET"] == env["EVENTS_ARCHIVE_BUCKET_NAME"]


def _stack() -> Stack:
    return Stack(App(), "Refused")


def _construct(stack: Stack, **props: Any) -> None:
    EventMetricsAggregator(
        stack, "E", stream=kinesis.Stream.from_stream_arn(
            stack, "S", "arn:aws:kinesis:us-east-1:123456789012:stream/s"),
        lookup_table=dynamodb.Table.from_table_name(stack, "L", "lookups"), **props)


def test_the_profile_given_twice_differently_is_refused_naming_both() -> None:
    with pytest.raises(ValueError, match=r"^profile \('seed-003'\) and config.profile "
                                         r"\('default'\) disagree"):
        _construct(_stack(), profile="seed-003", config=EventMetricsConfig())


def test_a_table_of_the_app_keyed_otherwise_than_the_profile_is_refused() -> None:
    stack = _stack()
    string = dynamodb.AttributeType.STRING
    ours = dynamodb.Table(stack, "Ours", partition_key=dynamodb.Attribute(name="pk", type=string),
                          sort_key=dynamodb.Attribute(name="sk", type=string))
    with pytest.raises(ValueError, match=r"^metrics_table has keys pk,sk but "
                                         r"config.key_attributes is partition_key,sort_key"):
        _construct(stack, metrics_table=ours, profile="seed-003")


def test_a_key_name_against_the_profile_fails_the_example_stack_naming_it() -> None:
    app = App(context={"events_profile": "seed-003", "events_key_attributes": "pk,sk"})
    with pytest.raises(ConfigError, match=r"^key_attributes \(EVENTS_KEY_ATTRIBUTES\): "
                                          r"'pk,sk' conflicts with profile seed-003"):
        EventMetricsStack(app, "Conflict")


@pytest.fixture
def documents_deployment(moto: MotoServer) -> Iterator[tuple[Any, Any]]:
    """The document's table (``partition_key``/``sort_key``) and bucket, and our lookups;
    removed afterwards, since the names are fixed."""
    ddb, s3 = client("dynamodb", moto.endpoint_url), client("s3", moto.endpoint_url)
    ddb.create_table(**table_definition(TABLE, *KEYS))
    ddb.create_table(**table_definition(SEED_003_LOOKUPS, "pk"))
    s3.create_bucket(Bucket=BUCKET)
    try:
        yield ddb, s3
    finally:
        for table in (TABLE, SEED_003_LOOKUPS):
            ddb.delete_table(TableName=table)
        for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
        s3.delete_bucket(Bucket=BUCKET)


def test_the_synthesized_function_counts_a_kinesis_batch_into_the_documents_table_on_moto(
        templates: dict[str, Template], documents_deployment: tuple[Any, Any]) -> None:
    ddb, s3 = documents_deployment
    env = _env(templates[SEED_003])
    assert all(isinstance(value, str) for value in env.values())
    workload = generate_workload(3, 150, users=20)
    for item in workload.lookups:
        ddb.put_item(TableName=SEED_003_LOOKUPS, Item=item)
    # moto's TransactWriteItems is not safe under concurrent transactions: one worker.
    runtime = build_runtime({**env, "EVENTS_MAX_WORKERS": "1"}, dynamodb=ddb, s3=s3)
    try:
        batch = {"Records": workload.records}
        first = handle(batch, runtime, now_ms=int(time.time() * 1000))
        again = handle(batch, runtime, now_ms=int(time.time() * 1000))
    finally:
        runtime.pool.shutdown(wait=True)
    assert first == again == {"batchItemFailures": []}

    items = [i for page in ddb.get_paginator("scan").paginate(TableName=TABLE)
             for i in page["Items"]]
    assert all(set(KEYS) <= set(item) and not {"pk", "sk"} & set(item) for item in items)
    assert read_counters(items, KEYS) == (workload.counters, workload.users,
                                          len(workload.counted_ids))
    (experiment, variant, window, start), truth = max(workload.counters.items(),
                                                      key=lambda kv: kv[1]["events"])
    counter = ddb.get_item(TableName=TABLE, Key={
        "partition_key": {"S": f"EXP#{experiment}"},
        "sort_key": {"S": f"{window}#{start}#VARIANT#{variant}"}})["Item"]
    assert int(counter["events"]["N"]) == truth["events"] > 1

    listing = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    archived = [json.loads(line)["event_id"] for o in listing for line in gzip.decompress(
        s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()).splitlines()]
    assert sorted(archived) == sorted(workload.counted_ids)
    assert all(o["Key"].startswith("events/year=2026/") for o in listing)
