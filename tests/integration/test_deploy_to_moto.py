"""Synthesize the app, deploy it into moto the way ``cdk deploy`` would, and look at it."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import AggregatorConfig
from infra.stacks.aggregator_stack import config_from_context
from local_aws import MotoServer, client
from local_aws.deploy import DeployedStack, DeployError, deploy_synthesized_stack
from tests.infra.support import STACK_NAME as APP_STACK_NAME

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

# moto skips these resource types with a warning; DeployedStack.skipped_resources says so.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Tried to parse AWS.* not supported by moto"
)

REPO = Path(__file__).resolve().parents[2]
STACK_NAME = APP_STACK_NAME


@pytest.fixture(scope="module")
def context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO / "cdk.json").read_text())["context"]
    return context


@pytest.fixture(scope="module")
def cloud_assembly(app_assembly: Path) -> Path:
    """The app's one synth of the session (``app.py`` as ``cdk synth`` runs it)."""
    return app_assembly


@pytest.fixture(scope="module")
def deploy_moto() -> Iterator[MotoServer]:
    """A server of its own: the deployed stack does not leak into other modules' moto."""
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def deployed(cloud_assembly: Path, deploy_moto: MotoServer) -> DeployedStack:
    return deploy_synthesized_stack(cloud_assembly, STACK_NAME, deploy_moto.endpoint_url)


def test_table_has_a_new_and_old_images_stream(
    deployed: DeployedStack, deploy_moto: MotoServer
) -> None:
    ddb = client("dynamodb", deploy_moto.endpoint_url)
    table = ddb.describe_table(TableName=deployed.table_name)
    assert table["Table"]["StreamSpecification"] == {
        "StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert table["Table"]["LatestStreamArn"] == deployed.stream_arn


def test_function_environment_rebuilds_the_synthesized_config(
    deployed: DeployedStack, deploy_moto: MotoServer, context: dict[str, Any]
) -> None:
    function = client("lambda", deploy_moto.endpoint_url).get_function_configuration(
        FunctionName=deployed.function_name
    )
    deployed_config = AggregatorConfig.from_env(function["Environment"]["Variables"])
    expected = dataclasses.replace(
        config_from_context(context),
        table_name=deployed.table_name,
        snapshot_table_name=deployed.table_name,
        archive_bucket_name=deployed.archive_bucket_name or "",
    )
    assert deployed_config == expected
    assert deployed_config.archival_enabled


def test_function_runtime_and_handler(deployed: DeployedStack, deploy_moto: MotoServer) -> None:
    function = client("lambda", deploy_moto.endpoint_url).get_function_configuration(
        FunctionName=deployed.function_name
    )
    assert (function["Runtime"], function["Handler"]) == (
        "python3.14", "aggregator.handler.handler"
    )


def test_event_source_mapping_is_returned_not_deployed(
    deployed: DeployedStack, deploy_moto: MotoServer
) -> None:
    lambda_client = client("lambda", deploy_moto.endpoint_url)
    assert lambda_client.list_event_source_mappings()["EventSourceMappings"] == []
    (mapping,) = deployed.event_source_mappings
    assert mapping.event_source_arn == deployed.stream_arn
    assert mapping.function_name == deployed.function_name
    queue_arn = client("sqs", deploy_moto.endpoint_url).get_queue_attributes(
        QueueUrl=deployed.queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    assert mapping.properties["DestinationConfig"] == {"OnFailure": {"Destination": queue_arn}}
    assert mapping.properties["StartingPosition"] == "TRIM_HORIZON"


def test_writes_reach_the_stream(deployed: DeployedStack, deploy_moto: MotoServer) -> None:
    """Without moto's own mapping, a put is not swallowed by a Docker invocation."""
    ddb = client("dynamodb", deploy_moto.endpoint_url)
    streams = client("dynamodbstreams", deploy_moto.endpoint_url)
    ddb.put_item(
        TableName=deployed.table_name,
        Item={"PK": {"S": "default/BUCKET#it"}, "SK": {"S": "#STATE"}},
    )
    stream = streams.describe_stream(StreamArn=deployed.stream_arn)["StreamDescription"]
    iterator = streams.get_shard_iterator(
        StreamArn=deployed.stream_arn,
        ShardId=stream["Shards"][0]["ShardId"],
        ShardIteratorType="TRIM_HORIZON",
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [(r["eventName"], r["dynamodb"]["Keys"]["PK"]["S"]) for r in records] == [
        ("INSERT", "default/BUCKET#it")
    ]


def test_archive_bucket_and_dlq_exist(deployed: DeployedStack, deploy_moto: MotoServer) -> None:
    assert deployed.archive_bucket_name is not None
    client("s3", deploy_moto.endpoint_url).head_bucket(Bucket=deployed.archive_bucket_name)
    client("sqs", deploy_moto.endpoint_url).get_queue_attributes(QueueUrl=deployed.queue_url)


MOTO_UNSUPPORTED = {
    "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy",
    "AWS::CloudWatch::Alarm", "AWS::CDK::Metadata",
    # The archive catalog (infra/archive_catalog.py); tests/archive checks it with DuckDB.
    "AWS::Glue::Database", "AWS::Glue::Table", "AWS::Athena::WorkGroup",
    # The saved Logs Insights queries (infra/log_queries.py); tests/ops checks them.
    "AWS::Logs::QueryDefinition",
}
"""Resource types moto 5.2.1 cannot create from a template; it skips them with a warning."""


def test_only_policies_alarms_and_metadata_are_skipped_by_moto(deployed: DeployedStack) -> None:
    skipped = set(deployed.skipped_resources.values())
    assert {"AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::CloudWatch::Alarm"} <= skipped
    assert skipped <= MOTO_UNSUPPORTED


def test_dlq_is_encrypted_with_the_deployed_key(
    deployed: DeployedStack, deploy_moto: MotoServer
) -> None:
    attributes = client("sqs", deploy_moto.endpoint_url).get_queue_attributes(
        QueueUrl=deployed.queue_url, AttributeNames=["KmsMasterKeyId"]
    )["Attributes"]
    (key_id,) = (physical for logical, physical in deployed.resources.items()
                 if deployed.resource_types[logical] == "AWS::KMS::Key")
    # (moto stores a template's key policy as an object, so DescribeKey fails on it)
    assert attributes["KmsMasterKeyId"].endswith(key_id.rsplit("/", 1)[-1])


def test_alarm_topic_and_dashboard_are_deployed(
    deployed: DeployedStack, deploy_moto: MotoServer
) -> None:
    topic_arn = deployed.output("AlarmTopicArn")
    attributes = client("sns", deploy_moto.endpoint_url).get_topic_attributes(
        TopicArn=topic_arn
    )["Attributes"]
    assert attributes["KmsMasterKeyId"]
    dashboard = client("cloudwatch", deploy_moto.endpoint_url).get_dashboard(
        DashboardName=deployed.output("DashboardName")
    )
    assert json.loads(dashboard["DashboardBody"])["widgets"]


def test_missing_template_is_a_deploy_error(tmp_path: Path, deploy_moto: MotoServer) -> None:
    with pytest.raises(DeployError, match=r"no template for stack 'Nope'"):
        deploy_synthesized_stack(tmp_path, "Nope", deploy_moto.endpoint_url)


def test_moto_failure_reasons_are_reported(tmp_path: Path, deploy_moto: MotoServer) -> None:
    template = {"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {
        "Runtime": "python3.14", "Handler": "x.y", "Role": "arn:aws:iam::123456789012:role/none",
        "Code": {"S3Bucket": "no-such-bucket", "S3Key": "none.zip"},
    }}}}
    (tmp_path / "Broken.template.json").write_text(json.dumps(template))
    with pytest.raises(DeployError, match=r"^moto rejected stack 'Broken': .*NoSuchBucket"):
        deploy_synthesized_stack(tmp_path, "Broken", deploy_moto.endpoint_url)
