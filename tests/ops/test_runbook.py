"""The runbook's recovery procedure, its ``bash`` blocks as written, against moto.

The projection's example stack (the app's one synth) is deployed into moto; a batch keeps
failing in the local mapping (the deployed mapping's settings) until it is given up to the
stack's DLQ, the same source items change again and are projected, and then the mapping
is created in moto (moto runs mapped functions in Docker, so only once the traffic is
written) and every ``bash`` block of ``docs/operations.md``'s *Procedure* runs in one
shell: the AWS CLI (against moto) and ``.venv/bin/python -m redrive``. Only the stack's
name is put in for ``STACK``. The ground truth is the projection of the source table's
final items.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from local_aws.deploy import deploy_synthesized_stack
from local_aws.deployed import DeployedPipeline
from local_aws.projection_harness import compare, expected_dashboard, generate_workload
from local_aws.server import MotoServer, client
from streamagg_projection.handler import build_runtime, handle
from tests.infra.support import ENV_NAME

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "docs" / "operations.md"
STACK = f"SentimentProjection-{ENV_NAME}"
KEY = ("source_id", "ingested_at")
"""The example stack's source table key."""
_BLOCK = re.compile(r"^ *```bash\n(.*?)^ *```", re.MULTILINE | re.DOTALL)


def procedure() -> str:
    """The Procedure's bash blocks, in order, dedented, ``STACK`` set to the test's stack."""
    text = RUNBOOK.read_text()
    section = text.split("### Procedure", 1)[1].split("\n### ", 1)[0]
    blocks = []
    for match in _BLOCK.finditer(section):
        indent = len(match.group(0)) - len(match.group(0).lstrip(" "))
        blocks.append("\n".join(line[indent:] for line in match.group(1).splitlines()))
    assert len(blocks) >= 6, "the Procedure lost its commands"
    script = "\n".join(blocks)
    assert re.search(r"^STACK=\S+", script, flags=re.MULTILINE)
    return re.sub(r"^STACK=\S+", f"STACK={STACK}", script, flags=re.MULTILINE)


def test_the_procedure_names_every_step_with_a_command() -> None:
    script = procedure()
    for command in ("aws cloudformation describe-stacks", "aws lambda list-event-source-mappings",
                    "aws sqs get-queue-attributes", "aws sqs receive-message",
                    "--no-enabled", "-m redrive --stack-name \"$STACK\" --dry-run",
                    "-m redrive --stack-name \"$STACK\" --handler-log", "--enabled"):
        assert command in script


@pytest.fixture(scope="module")
def runbook_moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def _invoke(env: dict[str, str], url: str, poisoned: set[str]) -> Any:
    runtime = build_runtime(env, dynamodb=client("dynamodb", url))

    def invoke(event: dict[str, Any]) -> Mapping[str, Any]:
        if any(r["dynamodb"]["SequenceNumber"] in poisoned for r in event["Records"]):
            raise RuntimeError("Task timed out after 60.00 seconds")
        return handle(event, runtime, now_ms=int(time.time() * 1000))
    return invoke


@pytest.mark.skipif(shutil.which("aws") is None, reason="the runbook's commands need the AWS CLI")
def test_the_runbook_procedure_recovers_the_projection_stack(
        app_assembly: Path, runbook_moto: MotoServer, tmp_path: Path) -> None:
    url = runbook_moto.endpoint_url
    stack = deploy_synthesized_stack(app_assembly, STACK, url)
    pipeline = DeployedPipeline(stack, url, tmp_path / "handler.log")
    ddb = client("dynamodb", url)
    source = stack.output("TableName")
    workload = generate_workload(1, 60, items=10)
    poisoned: set[str] = set()
    mapping = pipeline.stream_mapping(pipeline.invoke_with(
        lambda env: _invoke(env, url, poisoned)))
    half = 30
    for number, record in enumerate(workload.records):
        if number == half:  # the mapping gives a range up, then the items change again
            poisoned.update(_positions(url, stack.stream_arn)[8:20])
            with pipeline.logs():
                mapping.drain()
            poisoned.clear()
        old = record["dynamodb"].get("OldImage")
        if record["dynamodb"].get("NewImage") is None:
            ddb.delete_item(TableName=source, Key={name: old[name] for name in KEY})
        else:
            ddb.put_item(TableName=source, Item=record["dynamodb"]["NewImage"])
    with pipeline.logs():
        mapping.drain()
    assert pipeline.messages_left() > 0
    dashboard = stack.output("DashboardTableName")
    expected = expected_dashboard(_final_states(ddb, source))

    def items() -> list[dict[str, Any]]:
        return [i for page in ddb.get_paginator("scan").paginate(TableName=dashboard)
                for i in page["Items"]]
    assert compare(expected, items()), "the given-up batch should have left the dashboard wrong"

    functions = client("lambda", url)
    functions.create_event_source_mapping(
        FunctionName=stack.function_name, EventSourceArn=stack.stream_arn,
        StartingPosition="TRIM_HORIZON",
        FilterCriteria=pipeline.mapping_spec.properties.get("FilterCriteria", {"Filters": []}))
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": url, "MOTO_URL": url}
    script = ('set -euo pipefail\n'
              'aws() { command aws --endpoint-url "$MOTO_URL" "$@"; }\n' + procedure())
    started = time.perf_counter()
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    print(result.stdout, f"procedure: {time.perf_counter() - started:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "; would recover\n" in result.stdout
    assert "recovered:" in result.stdout
    assert "left in the queue" in result.stdout
    assert pipeline.messages_left() == 0
    (mapping_state,) = [m["State"] for m in functions.list_event_source_mappings(
        FunctionName=stack.function_name)["EventSourceMappings"]]
    assert mapping_state == "Enabled"
    assert not compare(expected, items())
    assert json.loads((tmp_path / "redrive-handler.log").read_text().splitlines()[0])


def _final_states(ddb: Any, table: str) -> dict[str, dict[str, Any] | None]:
    """The source table's items as the harness's plain states (what the dashboard must
    project)."""
    states: dict[str, dict[str, Any] | None] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            state: dict[str, Any] = {name: item[name]["S"] for name in
                                     ("source_id", "ingested_at", "status", "sentiment")
                                     if name in item}
            if "score" in item:
                state["score"] = item["score"]["N"]
            if "matched_tags" in item:
                state["tags"] = sorted(item["matched_tags"]["SS"])
            states[f"{state['source_id']}#{state['ingested_at']}"] = state
    return states


def _positions(url: str, stream_arn: str) -> list[str]:
    streams = client("dynamodbstreams", url)
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"],
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return [r["dynamodb"]["SequenceNumber"]
            for r in streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]]
