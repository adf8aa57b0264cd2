"""X-Ray tracing: one prop on every construct, off by default, cdk-nag clean when on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from infra import EventMetricsAggregator, ObjectBundler, ProjectionStage, StreamAggregator
from infra.stacks.aggregator_stack import construct_props

from .support import source_table, synth_with_nag

XRAY = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
CONSTRUCTS = ("Usage", "Events", "Dashboard", "Bundles")


def _build(stack: Stack, **props: Any) -> dict[str, Any]:
    """The four constructs in ``stack``, each with ``props``, by construct id."""
    events = kinesis.Stream(stack, "EventStream", encryption=kinesis.StreamEncryption.MANAGED)
    lookups = dynamodb.Table.from_table_name(stack, "Assignments", "assignments")
    items = dynamodb.Table(
        stack, "Items", stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        partition_key=dynamodb.Attribute(name="source_id", type=dynamodb.AttributeType.STRING),
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True))
    return {
        "Usage": StreamAggregator(stack, "Usage", table=source_table(stack), **props),
        "Events": EventMetricsAggregator(stack, "Events", stream=events,
                                         lookup_table=lookups, **props),
        "Dashboard": ProjectionStage(stack, "Dashboard", source_table=items, **props),
        "Bundles": ObjectBundler(stack, "Bundles", **props),
    }


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """The four constructs with ``tracing=True``, synthesized under cdk-nag's AwsSolutions
    pack (synth raises on an unacknowledged finding)."""
    outdir = tmp_path_factory.mktemp("traced.out")

    def build(app: App) -> None:
        _build(Stack(app, "Traced"), tracing=True)

    synth_with_nag(outdir, build)
    return Template.from_json(json.loads(
        (Path(outdir) / "Traced.template.json").read_text()))


def _pipeline_functions(template: Template) -> dict[str, dict[str, Any]]:
    """The pipelines' functions (not aws-cdk-lib's own handlers), by logical id."""
    return {logical_id: function["Properties"] for logical_id, function
            in template.find_resources("AWS::Lambda::Function").items()
            if any(logical_id.startswith(name) for name in CONSTRUCTS)}


def test_tracing_on_makes_every_function_trace_actively(traced: Template) -> None:
    functions = _pipeline_functions(traced)
    assert len(functions) == len(CONSTRUCTS)
    for props in functions.values():
        assert props["TracingConfig"] == {"Mode": "Active"}


def test_tracing_on_grants_each_role_what_xray_needs_and_nothing_more(
        traced: Template) -> None:
    for props in _pipeline_functions(traced).values():
        role = props["Role"]["Fn::GetAtt"][0]
        (policy,) = [p["Properties"] for p in
                     traced.find_resources("AWS::IAM::Policy").values()
                     if {"Ref": role} in p["Properties"]["Roles"]]
        xray = [s for s in policy["PolicyDocument"]["Statement"]
                if any(str(a).startswith("xray:") for a in
                       (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))]
        assert xray == [{"Action": XRAY, "Effect": "Allow", "Resource": "*"}]


def test_tracing_is_off_by_default() -> None:
    stack = Stack(App(), "Untraced")
    _build(stack)
    template = Template.from_stack(stack)
    for props in _pipeline_functions(template).values():
        assert "TracingConfig" not in props
    assert "xray:" not in str(template.to_json()["Resources"])


def test_tracing_is_a_prop_not_an_override() -> None:
    stack = Stack(App(), "Override")
    with pytest.raises(ValueError, match=r"^function_overrides: tracing is the prop tracing"):
        StreamAggregator(stack, "Usage", table=source_table(stack),
                         function_overrides={"tracing": lambda_.Tracing.ACTIVE})


def test_tracing_must_be_a_bool() -> None:
    stack = Stack(App(), "Bad")
    with pytest.raises(TypeError, match=r"^tracing must be True or False, got 'Active'"):
        StreamAggregator(stack, "Usage", table=source_table(stack),
                         tracing="Active")  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), ("true", True), (" TRUE ", True), (False, False), ("false", False)])
def test_the_app_reads_tracing_from_the_context(value: object, expected: bool) -> None:
    assert construct_props({"tracing": value}) == {"tracing": expected}


def test_a_tracing_context_value_that_is_no_boolean_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^tracing \(context\): 'yes' is not true or false"):
        construct_props({"tracing": "yes"})
