"""The runbook, its ``bash`` blocks as written, against moto.

The projection's example stack (the app's one synth) is deployed into moto; a batch keeps
failing in the local mapping (the deployed mapping's settings) until it is given up to the
stack's DLQ, the same source items change again and are projected, and then the mapping
is created in moto (moto runs mapped functions in Docker, so only once the traffic is
written) and every ``bash`` block of ``docs/operations.md`` runs, in order, in one shell:
the AWS CLI (against moto) and ``.venv/bin/python -m redrive``. The projection stack
stands in for the usage stack where the runbook names it (it has the same outputs); only
the stack's name and the region are put in. The recovery procedure must leave the
dashboard equal to the projection of the source table's final items. The few commands
moto cannot answer (:data:`NOT_ON_MOTO`) print what they are instead of running, and the
test checks that list; the block that rehearses the redrive with pytest is this suite.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from local_aws.deploy import DeployedStack, deploy_synthesized_stack
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


def bash_blocks(text: str) -> list[str]:
    """The ``bash`` blocks of ``text``, in order, dedented."""
    blocks = []
    for match in _BLOCK.finditer(text):
        indent = len(match.group(0)) - len(match.group(0).lstrip(" "))
        blocks.append("\n".join(line[indent:] for line in match.group(1).splitlines()))
    return blocks


def for_the_test(script: str) -> str:
    """``script`` with the test's stack for ``STACK`` and moto's region for the region."""
    assert re.search(r"^STACK=\S+", script, flags=re.MULTILINE)
    script = re.sub(r"^STACK=\S+", f"STACK={STACK}", script, flags=re.MULTILINE)
    return re.sub(r"^export AWS_DEFAULT_REGION=\S+", "export AWS_DEFAULT_REGION=us-east-1",
                  script, flags=re.MULTILINE)


def procedure() -> str:
    """The Procedure's bash blocks as one script."""
    section = RUNBOOK.read_text().split("### Procedure", 1)[1].split("\n### ", 1)[0]
    blocks = bash_blocks(section)
    assert len(blocks) >= 6, "the Procedure lost its commands"
    return for_the_test("\n".join(blocks))


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


@pytest.fixture(scope="module")
def stack(app_assembly: Path, runbook_moto: MotoServer) -> Iterator[DeployedStack]:
    yield deploy_synthesized_stack(app_assembly, STACK, runbook_moto.endpoint_url)
    # moto servers of one process share their backends: the projection demo deploys a
    # stack of the same name later in the session.
    client("cloudformation", runbook_moto.endpoint_url).delete_stack(StackName=STACK)


def _invoke(env: dict[str, str], url: str, poisoned: set[str]) -> Any:
    runtime = build_runtime(env, dynamodb=client("dynamodb", url))

    def invoke(event: dict[str, Any]) -> Mapping[str, Any]:
        if any(r["dynamodb"]["SequenceNumber"] in poisoned for r in event["Records"]):
            raise RuntimeError("Task timed out after 60.00 seconds")
        return handle(event, runtime, now_ms=int(time.time() * 1000))
    return invoke


def _map_in_moto(stack: DeployedStack, url: str) -> None:
    """The stack's event source mapping, which the deployment leaves out, created in moto."""
    functions = client("lambda", url)
    if not functions.list_event_source_mappings(
            FunctionName=stack.function_name)["EventSourceMappings"]:
        (spec,) = stack.event_source_mappings
        functions.create_event_source_mapping(
            FunctionName=stack.function_name, EventSourceArn=stack.stream_arn,
            StartingPosition="TRIM_HORIZON",
            FilterCriteria=spec.properties.get("FilterCriteria", {"Filters": []}))


def _run(script: str, url: str, workdir: Path, shims: str) -> subprocess.CompletedProcess[str]:
    """``script`` in bash from ``workdir`` (with the checkout's ``.venv``), every ``aws``
    command against moto."""
    if not (workdir / ".venv").exists():
        (workdir / ".venv").symlink_to(REPO / ".venv")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": url, "MOTO_URL": url,
           "AWS_CLI": str(AWS_CLI)}
    started = time.perf_counter()
    result = subprocess.run(["bash", "-c", f"set -euo pipefail\n{shims}\n{script}"],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
                            check=False)
    print(result.stdout, f"script: {time.perf_counter() - started:.1f} s")
    return result


NOT_ON_MOTO = {"aws logs tail": "AWS CLI v2 only (v1 has no `logs tail`)",
               "aws logs describe-query-definitions": "moto has no saved queries",
               "aws logs start-query": "run with a saved query (see above)",
               "aws logs get-query-results": "run with a saved query (see above)",
               "aws lambda get-account-settings": "moto does not answer it",
               "npx cdk": "deploys to a real account (the synth is tested elsewhere)"}
"""The runbook's commands moto cannot answer; the test lists them instead of running them."""
SHIMS = """
aws() {
  case "$1 $2" in
    "logs tail"|"logs describe-query-definitions"|"logs start-query"|\\
    "logs get-query-results"|"lambda get-account-settings")
      echo "not run on moto: aws $1 $2" >&2; return 0;;
  esac
  command "$AWS_CLI" --endpoint-url "$MOTO_URL" "$@"
}
npx() { echo "not run on moto: npx $1" >&2; }
"""


AWS_CLI = REPO / ".venv-awscli" / "bin" / "aws"
"""Installed by ``make setup`` (the runbook's commands are AWS CLI commands)."""


def test_every_command_of_the_runbook_runs_and_its_procedure_recovers_the_projection(
        stack: DeployedStack, runbook_moto: MotoServer, tmp_path: Path) -> None:
    assert AWS_CLI.exists(), f"{AWS_CLI} is missing: run make setup"
    url = runbook_moto.endpoint_url
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

    _map_in_moto(stack, url)  # only now: moto would run a mapped function in Docker
    blocks = bash_blocks(RUNBOOK.read_text())
    rehearsal = [block for block in blocks if "-m pytest" in block]
    assert len(rehearsal) == 1
    assert procedure() in for_the_test("\n".join(blocks))
    result = _run(for_the_test("\n".join(b for b in blocks if b not in rehearsal)), url,
                  tmp_path, SHIMS)
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = {line.removeprefix("not run on moto: ") for line in result.stderr.splitlines()
               if line.startswith("not run on moto: ")}
    assert skipped == set(NOT_ON_MOTO), skipped
    assert "; would recover\n" in result.stdout
    assert "recovered:" in result.stdout
    assert pipeline.messages_left() == 0
    (mapping_state,) = [m["State"] for m in client("lambda", url).list_event_source_mappings(
        FunctionName=stack.function_name)["EventSourceMappings"]]
    assert mapping_state == "Enabled"
    assert not compare(expected, items())
    assert json.loads((tmp_path / "redrive-handler.log").read_text().splitlines()[0])
    assert list(tmp_path.glob("dlq-*.json"))  # the purge section saves the queue first


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
