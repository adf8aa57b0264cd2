import contextlib
import importlib
import io
import json
import logging
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.stub import Stubber

from aggregator import handler as aggregator_handler
from aggregator.handler import build_runtime, handle
from streamagg_engine.clients import sdk_config
from streamagg_engine.logs import JsonFormatter, configure_logging
from tests.factories import bucket_record


def ddb() -> Any:
    return boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def test_no_s3_client_is_built_when_archival_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real = ddb()

    def client(service: str, **_: Any) -> Any:
        built.append(service)
        return real

    monkeypatch.setattr(boto3, "client", client)
    runtime = build_runtime({"ENABLE_ARCHIVAL": "true", "ARCHIVE_BUCKET_NAME": ""})
    assert built == ["dynamodb"]
    assert runtime.stores.archive is None
    build_runtime({"ENABLE_ARCHIVAL": "true", "ARCHIVE_BUCKET_NAME": "b"})
    assert built == ["dynamodb", "dynamodb", "s3"]


def test_an_empty_batch_returns_at_once_without_any_call() -> None:
    client = ddb()
    with Stubber(client) as stub:
        runtime = build_runtime({}, dynamodb=client)
        assert handle({"Records": []}, runtime, now_ms=0) == {"batchItemFailures": []}
        assert handle({}, runtime, now_ms=0) == {"batchItemFailures": []}
        stub.assert_no_pending_responses()


def test_start_and_completion_are_logged_as_json_with_processing_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = ddb()
    runtime = build_runtime({"ENABLE_REFILL": "false"}, dynamodb=client)
    with Stubber(client) as stub:
        stub.add_response("update_item", {})
        stub.add_response("update_item", {})
        record = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000})
        assert handle({"Records": [record]}, runtime, now_ms=0) == {"batchItemFailures": []}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if '"_aws"' not in line]
    started, completed = lines[0], lines[-1]
    assert started["message"] == "batch started"
    assert started["record_count"] == 1
    assert completed["message"] == "batch completed"
    assert completed["snapshot_writes"] == 2
    assert isinstance(completed["processing_time_ms"], float)
    for entry in lines:
        assert {"timestamp", "level", "logger", "message"} <= entry.keys()


def test_errors_carry_the_traceback_in_an_exception_field() -> None:
    error = ValueError("boom")
    record = logging.LogRecord("aggregator.x", logging.ERROR, "f", 1, "failed", (),
                               exc_info=(ValueError, error, None))
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "ERROR"
    assert "ValueError: boom" in entry["exception"]


def test_configuring_logging_twice_keeps_one_handler() -> None:
    logger = configure_logging("INFO", "aggregator")
    configure_logging("DEBUG", "aggregator")
    assert len(logger.handlers) == 1
    assert logger.level == logging.DEBUG


def test_each_batch_emits_its_metrics_in_embedded_metric_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = ddb()
    runtime = build_runtime({"ENABLE_REFILL": "false", "AWS_LAMBDA_FUNCTION_NAME": "agg"},
                            dynamodb=client)
    bad = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000})
    del bad["dynamodb"]["SequenceNumber"]
    with Stubber(client) as stub:
        stub.add_response("update_item", {})
        stub.add_response("update_item", {})
        handle({"Records": [bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000}), bad]},
               runtime, now_ms=1_700_000_000_000)
    (document,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                   if '"_aws"' in line]
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "StreamAggregator"
    assert directive["Dimensions"] == [["FunctionName"]]
    assert document["FunctionName"] == "agg"
    assert document["_aws"]["Timestamp"] == 1_700_000_000_000
    assert (document["RecordsProcessed"], document["RecordsSkipped"],
            document["SnapshotWrites"], document["FailedWrites"]) == (2, 1, 2, 0)
    names = {m["Name"] for m in directive["Metrics"]}
    assert {"BatchDuration", "RecordsSkipped", "FailedWrites"} <= names


def test_logs_follow_stdout_when_a_tool_redirects_it() -> None:
    logger = configure_logging("INFO", "aggregator")
    first, second = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(first):
        logger.info("one")
    first.close()
    with contextlib.redirect_stdout(second):
        logger.info("two")
    assert json.loads(second.getvalue())["message"] == "two"


def test_requests_name_the_aggregator_and_the_lambda_runtime_in_their_user_agent() -> None:
    # The client settings skip botocore's per-request User-Agent rebuild; what AWS
    # (and CloudTrail) sees must still say who called, on which runtime.
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing",
                          config=sdk_config(8, "AWS_Lambda_python3.12"))
    sent: list[str] = []

    class Body:
        def stream(self, **_: Any) -> Any:
            yield b"{}"

    def answer(request: Any, **_: Any) -> AWSResponse:
        agent = request.headers["User-Agent"]
        sent.append(agent.decode() if isinstance(agent, bytes) else agent)
        return AWSResponse(request.url, 200, HTTPHeaders(), Body())

    client.meta.events.register("before-send.dynamodb", answer)  # type: ignore[arg-type]
    client.update_item(TableName="t", Key={"PK": {"S": "a"}}, UpdateExpression="SET x = :x",
                       ExpressionAttributeValues={":x": {"N": "1"}})
    (agent,) = sent
    assert agent.startswith("aws-stream-aggregator Python/3.")
    assert "exec-env/AWS_Lambda_python3.12" in agent
    assert "otocore/" in agent


# --- the Lambda entry point: request id, cold start, each pipeline's JSON logs ------------

class Context:
    """The two attributes of Lambda's context object the entry point reads."""

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id
        self.function_name = "usage-fn"


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_every_line_names_its_request_and_only_the_first_invocation_is_a_cold_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    client = ddb()
    monkeypatch.setattr(boto3, "client", lambda service, **_: client)
    for name, value in {"ENABLE_REFILL": "false", "ENABLE_ARCHIVAL": "false",
                        "LOG_LEVEL": "DEBUG", "AWS_LAMBDA_FUNCTION_NAME": "usage-fn"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(aggregator_handler.handler, "runtime", None)
    event = {"Records": [bucket_record("MODIFY", {"rpm": 0}, {"rpm": 1000})]}
    with Stubber(client) as stub:
        for _ in range(4):
            stub.add_response("update_item", {})
        capsys.readouterr()
        aggregator_handler.handler(event, Context("req-cold"))
        cold = json_lines(capsys.readouterr().out)
        aggregator_handler.handler(event, Context("req-warm"))
        warm = json_lines(capsys.readouterr().out)

    for lines, request_id, cold_start in ((cold, "req-cold", True), (warm, "req-warm", False)):
        kinds = {line.get("message", "metrics") for line in lines}
        assert {"batch started", "snapshot update", "batch completed", "metrics"} <= kinds
        for line in lines:  # the handler's, a worker thread's and the EMF line alike
            assert (line["function_request_id"], line["cold_start"], line["function_name"]) == (
                request_id, cold_start, "usage-fn"), line


def test_lines_outside_an_invocation_carry_no_request_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = configure_logging("INFO", "aggregator")
    logger.info("between invocations")
    (line,) = json_lines(capsys.readouterr().out)
    assert "function_request_id" not in line
    assert "cold_start" not in line


def test_a_tool_calling_handle_gets_a_fresh_request_id_per_batch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime = build_runtime({}, dynamodb=ddb())
    handle({"Records": []}, runtime, now_ms=0)
    handle({"Records": []}, runtime, now_ms=0)
    first, second = json_lines(capsys.readouterr().out)
    assert first["function_request_id"] != second["function_request_id"]
    assert first["cold_start"] is second["cold_start"] is False


SIBLINGS = {
    "streamagg_events": ({}, "streamagg_events.handler"),
    "streamagg_bundles": ({"DISTRIBUTION_BUCKET_NAME": "dist", "IDEMPOTENCY_TABLE_NAME": "claims"},
                          "streamagg_bundles.handler"),
    "streamagg_projection": ({}, "streamagg_projection.handler"),
}


@pytest.mark.parametrize("package", sorted(SIBLINGS))
def test_a_sibling_pipelines_handler_logs_json_on_stdout(
    package: str, capsys: pytest.CaptureFixture[str],
) -> None:
    env, logger_name = SIBLINGS[package]
    entry = importlib.import_module(f"{package}.handler")
    runtime = entry.build_runtime(env, dynamodb=ddb(), s3=object())
    if package == "streamagg_bundles":
        entry.handle({"Records": []}, runtime, now_ms=0, owner="req-1")
    else:
        entry.handle({"Records": []}, runtime, now_ms=0, request_id="req-1")
    (line,) = json_lines(capsys.readouterr().out)
    assert (line["logger"], line["message"], line["function_request_id"]) == (
        logger_name, "empty batch", "req-1")
