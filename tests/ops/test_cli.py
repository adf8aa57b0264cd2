"""``python -m redrive``: arguments, errors, and the module entry point."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from local_aws.bundles_harness import TEST_EVENT_BODY, Uploaded, s3_event_body
from redrive.bundles import describe_body
from redrive.cli import main
from tests.moto_fixtures import LocalAws

from .support import create_function, create_queue

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_the_module_runs_and_documents_its_options() -> None:
    result = subprocess.run([sys.executable, "-m", "redrive", "--help"], cwd=REPO,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    for option in ("--queue-url", "--function-name", "--stack-name", "--region",
                   "--endpoint-url", "--max-messages", "--batch-size", "--dry-run",
                   "--invoke", "--discard-expired"):
        assert option in result.stdout


def test_it_needs_a_queue_and_a_function(aws: LocalAws) -> None:
    code, out = run("--region", "us-east-1", "--endpoint-url", aws.endpoint_url)
    assert code == 2
    assert out == ("error: give --stack-name, or --queue-url (and --function-name for a "
                   "stream pipeline)\n")


def test_an_unknown_function_is_a_clear_error(aws: LocalAws) -> None:
    code, out = run("--queue-url", create_queue(aws), "--function-name", "nope",
                    "--region", "us-east-1", "--endpoint-url", aws.endpoint_url)
    assert code == 2
    assert out.startswith("error: An error occurred (ResourceNotFoundException)")


def test_an_unknown_stack_is_a_clear_error(aws: LocalAws) -> None:
    code, out = run("--stack-name", "StreamAggregator-nowhere", "--region", "us-east-1",
                    "--endpoint-url", aws.endpoint_url)
    assert code == 2
    assert "StreamAggregator-nowhere" in out


@pytest.mark.parametrize("argv", [["--batch-size", "0"], ["--max-attempts", "-1"],
                                  ["--wait-seconds", "21"]])
def test_bad_numbers_are_refused_by_the_parser(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv, out=io.StringIO())
    assert exit_info.value.code == 2


def test_a_function_whose_handler_is_no_pipelines_is_refused(aws: LocalAws) -> None:
    function = create_function(aws, {}, "mine.handler.handler")
    code, out = run("--queue-url", create_queue(aws), "--function-name", function,
                    "--region", "us-east-1", "--endpoint-url", aws.endpoint_url)
    assert code == 2
    assert "handler 'mine.handler.handler' is none of the pipelines'" in out
    assert "pass --pipeline" in out


def test_a_dlq_without_a_function_must_be_a_queues_dead_letter_queue(aws: LocalAws) -> None:
    code, out = run("--queue-url", create_queue(aws), "--region", "us-east-1",
                    "--endpoint-url", aws.endpoint_url)
    assert code == 2
    assert "give --function-name (or --stack-name)" in out


def test_a_stream_pipeline_named_outright_still_needs_its_function(aws: LocalAws) -> None:
    code, out = run("--queue-url", create_queue(aws), "--pipeline", "events",
                    "--region", "us-east-1", "--endpoint-url", aws.endpoint_url)
    assert code == 2
    assert out == ("error: the events pipeline's ranges are replayed through its function: "
                   "give --function-name or --stack-name\n")


def test_an_empty_bundler_dlq_is_a_clean_run(aws: LocalAws) -> None:
    dlq = create_queue(aws)
    arn = aws.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    aws.sqs.create_queue(QueueName=f"source-of-{arn.rsplit(':', 1)[1]}", Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})})
    code, out = run("--queue-url", dlq, "--region", "us-east-1", "--endpoint-url",
                    aws.endpoint_url, "--wait-seconds", "0")
    assert code == 0, out
    assert out.startswith("redrive: bundler;")
    assert "summary: no messages" in out


@pytest.mark.parametrize(("body", "said"), [
    (s3_event_body([Uploaded("b", "in/a b+c.csv", 3, "e", "v1", "01", datetime(2026, 1, 1,
                                                                             tzinfo=UTC))]),
     "1 object(s): s3://b/in/a b+c.csv (version v1)"),
    (TEST_EVENT_BODY, "S3's test event (the bundler drops it)"),
    ('{"Records": [', "a body that is not JSON (the bundler logs and drops it)"),
    ('{"Records": [{"s3": {}}]}', "1 object(s): (a malformed record)"),
    ("[]", "a body that is not an S3 event (the bundler logs and drops it)"),
])
def test_a_bundler_message_is_described_by_the_objects_it_announces(body: str,
                                                                     said: str) -> None:
    assert describe_body(body) == said
