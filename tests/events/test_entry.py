"""The Lambda entry point reads its settings from the function's own environment, where a
user of seed 003's processor may have set the document's variables by hand."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from streamagg_engine import bootstrap
from streamagg_engine.errors import ConfigError
from streamagg_events.handler import PIPELINE

FAKE_AWS = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process environment holding only fake AWS settings: no ``EVENTS_*`` variable."""
    for name in list(os.environ):
        if name.startswith(("EVENTS_", "AWS_")) or name in ("DYNAMODB_TABLE", "S3_BUCKET"):
            monkeypatch.delenv(name)
    for name, value in FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_the_entry_takes_the_documents_variables_once_per_container(
        function_env: pytest.MonkeyPatch) -> None:
    function_env.setenv("EVENTS_PROFILE", "seed-003")
    function_env.setenv("DYNAMODB_TABLE", "experiments-counters")
    function_env.setenv("S3_BUCKET", "experiments-archive")
    entry = bootstrap.LambdaEntry(PIPELINE)
    context = SimpleNamespace(aws_request_id="req-1")
    assert entry({"Records": []}, context) == {"batchItemFailures": []}
    runtime = entry.runtime
    assert entry({"Records": []}, context) == {"batchItemFailures": []}
    assert entry.runtime is runtime is not None
    config = runtime.config
    assert (config.metrics_table_name, config.archive_bucket_name, config.key_attributes) == (
        "experiments-counters", "experiments-archive", ("partition_key", "sort_key"))
    runtime.pool.shutdown(wait=True)


def test_the_entry_refuses_to_start_when_ours_and_the_documents_disagree(
        function_env: pytest.MonkeyPatch) -> None:
    function_env.setenv("EVENTS_METRICS_TABLE_NAME", "event-aggregations")
    function_env.setenv("DYNAMODB_TABLE", "event-counters")
    with pytest.raises(ConfigError, match=r"EVENTS_METRICS_TABLE_NAME='event-aggregations' "
                                          r"and DYNAMODB_TABLE='event-counters' disagree"):
        bootstrap.LambdaEntry(PIPELINE)({"Records": []}, SimpleNamespace())
