"""Alarms that reach a human: every construct's alarm topic lets CloudWatch publish, and
the dead-letter queues outlive their stacks.

moto skips topic policies, so this is asserted on the synthesized templates: one app with
each construct at its defaults and one StreamAggregator given a topic of the same app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from infra import EventMetricsAggregator, ObjectBundler, ProjectionStage, StreamAggregator

from .support import source_table, stack_template, synth_with_nag

pytestmark = pytest.mark.synth

CONSTRUCT_STACKS = {"Usage": "Usage", "Events": "Events", "Bundles": "Bundles",
                    "Dashboard": "Dashboard"}
"""Stack name -> the construct id inside it (alarm names are ``{stack}-{id}-{key}``)."""
OWN_TOPIC_STACK = "OwnTopic"


def _build(app: App) -> None:
    usage = Stack(app, "Usage")
    StreamAggregator(usage, "Usage", table=source_table(usage))
    events = Stack(app, "Events")
    EventMetricsAggregator(
        events, "Events",
        stream=kinesis.Stream(events, "Stream", encryption=kinesis.StreamEncryption.MANAGED),
        lookup_table=dynamodb.Table.from_table_name(events, "Lookups", "assignments"))
    ObjectBundler(Stack(app, "Bundles"), "Bundles")
    dashboard = Stack(app, "Dashboard")
    items = dynamodb.Table(
        dashboard, "Items",
        partition_key=dynamodb.Attribute(name="source_id", type=dynamodb.AttributeType.STRING),
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES, removal_policy=RemovalPolicy.RETAIN,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True))
    ProjectionStage(dashboard, "Dashboard", source_table=items)
    own = Stack(app, OWN_TOPIC_STACK)
    topic = sns.Topic(own, "OpsTopic", enforce_ssl=True)
    StreamAggregator(own, "Usage", table=source_table(own), alarm_topic=topic)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    assembly: Path = synth_with_nag(tmp_path_factory.mktemp("alarm-delivery.out"), _build)
    return {name: stack_template(assembly, name)
            for name in (*CONSTRUCT_STACKS, OWN_TOPIC_STACK)}


def _statements(template: Template) -> list[dict[str, Any]]:
    (policy,) = template.find_resources("AWS::SNS::TopicPolicy").values()
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _publish_statement(template: Template) -> dict[str, Any]:
    (allow,) = [s for s in _statements(template) if s["Effect"] == "Allow"]
    return allow


def _alarm_names(template: Template) -> list[str]:
    return [a["Properties"]["AlarmName"]
            for a in template.find_resources("AWS::CloudWatch::Alarm").values()]


@pytest.mark.parametrize("stack", [*CONSTRUCT_STACKS, OWN_TOPIC_STACK])
def test_cloudwatch_may_publish_the_constructs_alarms_and_nothing_else(
    templates: dict[str, Template], stack: str,
) -> None:
    template = templates[stack]
    allow = _publish_statement(template)
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    source_arn = allow["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Join"][1]
    construct = CONSTRUCT_STACKS.get(stack, "Usage")
    assert source_arn[-1] == f":alarm:{stack}-{construct}-*"
    assert "cloudwatch" in source_arn[2]
    names = _alarm_names(template)
    assert names
    assert all(name.startswith(f"{stack}-{construct}-") for name in names)


@pytest.mark.parametrize("stack", [*CONSTRUCT_STACKS, OWN_TOPIC_STACK])
def test_the_tls_deny_stays_beside_the_publish_grant(
    templates: dict[str, Template], stack: str,
) -> None:
    (deny,) = [s for s in _statements(templates[stack]) if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_a_topic_passed_in_gets_the_grant_on_its_own_policy(
    templates: dict[str, Template],
) -> None:
    template = templates[OWN_TOPIC_STACK]
    assert len(template.find_resources("AWS::SNS::Topic")) == 1
    (policy,) = template.find_resources("AWS::SNS::TopicPolicy").values()
    (topic_id,) = template.find_resources("AWS::SNS::Topic")
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]


@pytest.mark.parametrize("stack", list(CONSTRUCT_STACKS))
def test_dead_letter_queues_are_retained_with_their_stack(
    templates: dict[str, Template], stack: str,
) -> None:
    queues = templates[stack].find_resources("AWS::SQS::Queue")
    dead_letter = {name: q for name, q in queues.items() if "DeadLetterQueue" in name}
    assert dead_letter
    for queue in dead_letter.values():
        assert queue["DeletionPolicy"] == "Retain"
        assert queue["UpdateReplacePolicy"] == "Retain"
        assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
