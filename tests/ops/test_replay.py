"""Replaying records in batches: partial batch responses, function errors, bounded attempts."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from redrive.errors import FunctionError
from redrive.replay import InProcessTarget, InvokeTarget, batches, first_failure, replay
from tests.factories import bucket_record


def records(count: int) -> list[dict[str, Any]]:
    return [bucket_record("MODIFY", {"rpm": i * 1000}, {"rpm": (i + 1) * 1000},
                          sequence=str(10**20 + i)) for i in range(count)]


def seq(record: Mapping[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


class ScriptedTarget:
    """Answers each call with the next scripted response (a dict, or an exception)."""

    description = "scripted"

    def __init__(self, *responses: Any) -> None:
        self.responses = list(responses)
        self.calls: list[list[str]] = []

    def __call__(self, records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        self.calls.append([seq(r) for r in records])
        response = self.responses.pop(0) if self.responses else {"batchItemFailures": []}
        if isinstance(response, Exception):
            raise response
        return cast(Mapping[str, Any], response)


def test_batches_are_cut_by_count_and_by_size() -> None:
    assert [len(b) for b in batches(records(7), 3)] == [3, 3, 1]
    largest = max(len(json.dumps(r)) + 2 for r in records(7))
    assert [len(b) for b in batches(records(7), 100, max_bytes=largest * 2)] == [2, 2, 2, 1]


def test_a_partial_batch_response_retries_from_the_named_record() -> None:
    batch = records(5)
    target = ScriptedTarget({"batchItemFailures": [{"itemIdentifier": seq(batch[2])}]})
    lines: list[str] = []
    pauses: list[float] = []
    outcome = replay(batch, target, batch_size=10, max_attempts=3, progress=lines.append,
                     sleep=pauses.append)
    assert outcome.ok
    assert target.calls == [[seq(r) for r in batch], [seq(r) for r in batch[2:]]]
    assert (outcome.records, outcome.invocations, outcome.partial_failures) == (5, 2, 1)
    assert pauses == [1.0]
    assert lines[0].startswith(f"batch 1/1: attempt 1 failed (partial batch response: failed "
                               f"from {seq(batch[2])}); retrying 3 records in 1 s")
    assert lines[1].endswith("ok on attempt 2 [5/5]")


def test_an_unknown_identifier_retries_the_whole_batch() -> None:
    batch = records(3)
    assert first_failure(batch, {"batchItemFailures": [{"itemIdentifier": "nope"}]}) == 0
    assert first_failure(batch, {"batchItemFailures": []}) is None
    assert first_failure(batch, None) is None


def test_a_batch_that_keeps_failing_stops_the_replay_there() -> None:
    batch = records(6)
    target = ScriptedTarget({}, FunctionError("boom"), FunctionError("boom"),
                            FunctionError("boom"))
    pauses: list[float] = []
    lines: list[str] = []
    outcome = replay(batch, target, batch_size=2, max_attempts=3, progress=lines.append,
                     sleep=pauses.append, backoff_seconds=0.5)
    assert not outcome.ok
    assert outcome.stopped_at == seq(batch[2])
    assert outcome.error == "boom"
    assert (outcome.records, outcome.function_errors) == (2, 3)
    assert target.calls == [[seq(batch[0]), seq(batch[1])]] + [[seq(batch[2]), seq(batch[3])]] * 3
    assert pauses == [0.5, 1.0]
    assert lines[-1] == "batch 2/3: gave up after 3 attempt(s): boom"


def test_the_in_process_target_turns_any_exception_into_a_function_error() -> None:
    target = InProcessTarget(cast(Any, None), "aggregator")
    with pytest.raises(FunctionError, match="the handler raised TypeError"):
        target(records(1))


def _lambda_client() -> Any:
    return boto3.client("lambda", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _payload(document: Any) -> StreamingBody:
    data = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def test_the_invoke_target_sends_a_stream_event_and_reads_the_partial_response() -> None:
    client = _lambda_client()
    batch = records(2)
    response = {"batchItemFailures": [{"itemIdentifier": seq(batch[1])}]}
    with Stubber(client) as stub:
        stub.add_response("invoke", {"StatusCode": 200, "Payload": _payload(response)},
                          {"FunctionName": "agg", "InvocationType": "RequestResponse",
                           "Payload": json.dumps({"Records": batch}).encode()})
        assert InvokeTarget(client, "agg")(batch) == response


def test_a_function_error_from_invoke_fails_the_batch() -> None:
    client = _lambda_client()
    with Stubber(client) as stub:
        stub.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled",
                                     "Payload": _payload({"errorMessage": "Task timed out"})})
        with pytest.raises(FunctionError, match=r"Unhandled.*Task timed out"):
            InvokeTarget(client, "agg")(records(1))
    with Stubber(client) as stub:
        stub.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded")
        with pytest.raises(FunctionError, match="TooManyRequestsException"):
            InvokeTarget(client, "agg")(records(1))
