"""The redrive against the app's own stack, deployed into moto, with zae-limiter's traffic.

Like ``make demo``: the synthesized stack is deployed into moto, zae-limiter's client writes
traffic, and a local event source mapping with the deployed mapping's settings (retries
cut to 1) invokes the real handler with the deployed function's environment. The function
is down while the first traffic arrives, so its batches end in the stack's DLQ; then
``python -m redrive --stack-name ...`` recovers them, and the snapshots (and zae-limiter's
own reader) equal the traffic.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from aggregator.handler import build_runtime, handle
from infra import AggregatorStack
from local_aws import MotoServer, client
from local_aws.deploy import DeployedStack, deploy_synthesized_stack
from local_aws.event_source_mapping import LocalEventSourceMapping, MappingSettings
from local_aws.traffic import Traffic, generate, zae_limiter
from redrive.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS.* not supported by moto")

REPO = Path(__file__).resolve().parents[2]
STACK = "StreamAggregator-redrive"


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer) -> DeployedStack:
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(context=context, outdir=str(outdir))
    AggregatorStack(app, STACK)
    app.synth()
    return deploy_synthesized_stack(outdir, STACK, moto_server.endpoint_url)


class Lambda:
    """The deployed function run locally behind the deployed mapping's settings."""

    def __init__(self, stack: DeployedStack, endpoint_url: str) -> None:
        functions = client("lambda", endpoint_url)
        env = functions.get_function_configuration(
            FunctionName=stack.function_name)["Environment"]["Variables"]
        self.runtime = build_runtime(env, dynamodb=client("dynamodb", endpoint_url),
                                     s3=client("s3", endpoint_url))
        (spec,) = stack.event_source_mappings
        settings = dataclasses.replace(MappingSettings.from_template(spec.properties),
                                       retry_attempts=1)
        sqs = client("sqs", endpoint_url)
        self.down = False

        def on_failure(message: dict[str, Any]) -> None:
            sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(message))

        self.mapping = LocalEventSourceMapping(
            client("dynamodbstreams", endpoint_url), stack.stream_arn, self._invoke,
            settings=settings, on_failure=on_failure, clock=time.time)

    def _invoke(self, event: dict[str, Any]) -> Mapping[str, Any]:
        if self.down:
            raise RuntimeError("Task timed out after 60.00 seconds")
        return handle(event, self.runtime, now_ms=int(time.time() * 1000))


def tokens(stack: DeployedStack, endpoint_url: str, window: str) -> Counter[tuple[str, ...]]:
    found: Counter[tuple[str, ...]] = Counter()
    ddb = client("dynamodb", endpoint_url)
    for page in ddb.get_paginator("scan").paginate(TableName=stack.table_name):
        for item in page["Items"]:
            if item["SK"]["S"].startswith("#USAGE#") and item["window"]["S"] == window:
                for limit in ("rpm", "tpm"):
                    if limit in item:
                        found[(item["entity_id"]["S"], item["resource"]["S"], limit)] += \
                            int(item[limit]["N"])
    return found


def expected(traffic: Traffic) -> Counter[tuple[str, ...]]:
    return Counter({key: value for key, value in traffic.tokens.items() if value})


def redrive(endpoint_url: str, *options: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--stack-name", STACK, "--region", "us-east-1", "--endpoint-url",
                 endpoint_url, "--wait-seconds", "0",
                 "--handler-log", os.devnull, *options], out=out)
    print(out.getvalue())  # the report, for `pytest -s`
    return code, out.getvalue()


def test_the_redrive_recovers_a_forced_outage_on_the_deployed_stack(
    stack: DeployedStack, moto_server: MotoServer
) -> None:
    url = moto_server.endpoint_url
    function = Lambda(stack, url)
    limiter = zae_limiter(url, stack.table_name, "us-east-1")
    function.mapping.drain()  # (nothing yet: the table is new)

    function.down = True
    traffic = generate(limiter, seed=7, acquisitions=30)
    report = function.mapping.drain()
    assert report.records_sent_to_dlq > 0
    assert tokens(stack, url, "hourly") == Counter()
    sqs = client("sqs", url)
    depth = int(sqs.get_queue_attributes(
        QueueUrl=stack.queue_url, AttributeNames=["ApproximateNumberOfMessages"],
    )["Attributes"]["ApproximateNumberOfMessages"])
    assert depth >= 2
    sample = sqs.receive_message(QueueUrl=stack.queue_url, VisibilityTimeout=0)["Messages"][0]
    print("A DLQ message:", json.dumps(json.loads(sample["Body"]), indent=2))

    code, report_text = redrive(url, "--dry-run")
    assert code == 0
    assert report_text.count("; would recover\n") == depth
    assert tokens(stack, url, "hourly") == Counter()

    code, report_text = redrive(url)
    assert code == 0
    assert report_text.count("recovered:") == depth
    assert "0 left in the queue" in report_text
    assert tokens(stack, url, "hourly") == expected(traffic)
    assert tokens(stack, url, "daily") == expected(traffic)

    function.down = False
    more = generate(limiter, seed=8, acquisitions=10)
    function.mapping.drain()
    total = expected(traffic) + expected(more)
    assert tokens(stack, url, "hourly") == total
    for entity, resource in {(e, r) for e, r, _ in total}:
        summary = limiter.get_usage_summary(entity_id=entity, resource=resource,
                                            window_type="daily")
        assert {name: summary.total.get(name, 0) for name in ("rpm", "tpm")} == {
            name: total[(entity, resource, name)] for name in ("rpm", "tpm")}

    code, report_text = redrive(url)
    assert code == 0
    assert "summary: no messages" in report_text
