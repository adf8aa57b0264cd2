"""The profile says when it meets a zae-limiter schema newer than 0.17's (0.10.0): on the
stream (the version item rewritten by an upgrade) or in the table at container start.

Not a port: zae-limiter's own aggregator reads no version. Each case drives our Lambda
entry point on a zae-limiter table on moto and reads the handler's JSON log lines.
"""

from __future__ import annotations

from typing import Any

import pytest

from aggregator import handler, pipeline
from aggregator.schema import KNOWN_SCHEMA_VERSION, UNKNOWN_SCHEMA, SchemaWatch, is_known
from aggregator.stores import read_schema_version
from local_aws.server import client
from tests.zae_upstream import support
from tests.zae_upstream.support import Zae, logged, n, s, stream_record

zae_moto, zae_table, zae = support.zae_moto, support.zae_table, support.zae


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> SchemaWatch:
    """A fresh container's watch (the real one lives as long as the process)."""
    fresh = SchemaWatch()
    monkeypatch.setattr(pipeline, "SCHEMA_WATCH", fresh)
    monkeypatch.setattr(handler, "SCHEMA_WATCH", fresh)
    return fresh


def version_record(version: str, old: str = KNOWN_SCHEMA_VERSION) -> dict[str, Any]:
    def image(value: str) -> dict[str, Any]:
        return {"PK": s("_/SYSTEM#"), "SK": s("#VERSION"), "schema_version": s(value),
                "client_min_version": s("0.0.0")}
    return stream_record(image(old), image(version))


def bucket_record(zae: Zae) -> dict[str, Any]:
    old = support.bucket_image(zae.ns, "user-1", "gpt-4", {"tpm": 0})
    return stream_record(old, support.bucket_image(zae.ns, "user-1", "gpt-4", {"tpm": 2000}))


def batch_counts(capsys: pytest.CaptureFixture[str]) -> tuple[list[int], list[dict[str, Any]]]:
    """Per batch, the UnknownSchemaVersions metric; and the warnings logged."""
    lines = logged(capsys, None)
    done = [line["unknown_schema_versions"] for line in lines
            if line.get("message") == "batch completed"]
    return done, [line for line in lines if line.get("message") == UNKNOWN_SCHEMA]


@pytest.mark.parametrize(("version", "known"), [
    ("0.10.0", True), ("0.8.0", True), ("0.10", True), ("v0.9.1", True),
    ("0.10.1", False), ("0.11.0", False), ("1.0.0", False), ("", False), ("next", False),
])
def test_schemas_up_to_0_17s_are_known(version: str, known: bool) -> None:
    assert is_known(version) is known


def test_a_newer_schema_on_the_stream_is_said_once_and_counted_per_batch(
    zae: Zae, watch: SchemaWatch, capsys: pytest.CaptureFixture[str],
) -> None:
    for _ in range(2):
        assert zae.invoke_handler([version_record("0.11.0"), bucket_record(zae)]) == \
            {"batchItemFailures": []}
    counts, warnings = batch_counts(capsys)
    assert counts == [1, 1]
    (warning,) = warnings
    assert (warning["level"], warning["schema_version"], warning["source"],
            warning["known_schema_version"], warning["tested_zae_limiter"]) == \
        ("WARNING", "0.11.0", "stream", "0.10.0", "0.17.0")
    (snap,) = zae.snapshots("user-1", window="hourly")
    assert snap.counters == {"tpm": 2}  # still counted


def test_the_emf_line_carries_the_metric(
    zae: Zae, watch: SchemaWatch, capsys: pytest.CaptureFixture[str],
) -> None:
    zae.invoke_handler([version_record("1.0.0")])
    (emf,) = [line for line in logged(capsys, None) if "_aws" in line]
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert "UnknownSchemaVersions" in names
    assert emf["UnknownSchemaVersions"] == 1


@pytest.mark.parametrize("version", [KNOWN_SCHEMA_VERSION, "0.9.0"])
def test_a_known_schema_says_nothing(
    zae: Zae, watch: SchemaWatch, capsys: pytest.CaptureFixture[str], version: str,
) -> None:
    zae.invoke_handler([version_record(version)])
    assert batch_counts(capsys) == ([0], [])


def test_the_table_zae_limiter_created_holds_a_known_schema(zae: Zae) -> None:
    assert read_schema_version(zae.ddb, zae.table) == KNOWN_SCHEMA_VERSION


def test_a_newer_schema_in_the_table_is_said_at_start_and_counted_in_the_first_batch(
    zae: Zae, watch: SchemaWatch, capsys: pytest.CaptureFixture[str],
) -> None:
    key = {"PK": s("_/SYSTEM#"), "SK": s("#VERSION")}
    original = zae.ddb.get_item(TableName=zae.table, Key=key)["Item"]
    zae.ddb.put_item(TableName=zae.table, Item={**original, "schema_version": s("0.12.0")})
    try:
        zae.invoke_handler([version_record(KNOWN_SCHEMA_VERSION)])  # a warm container
        runtime = handler.PIPELINE.build_runtime(zae.config.to_env(), dynamodb=zae.ddb)
        event = {"Records": [bucket_record(zae)]}
        handler.PIPELINE.handle(event, runtime, now_ms=0, cold_start=True)
        zae.invoke_handler([version_record(KNOWN_SCHEMA_VERSION)])
    finally:
        zae.ddb.put_item(TableName=zae.table, Item=original)
    counts, warnings = batch_counts(capsys)
    assert counts == [0, 1, 0]
    assert [(w["schema_version"], w["source"]) for w in warnings] == [("0.12.0", "table")]


def test_a_table_that_cannot_be_read_costs_nothing(
    zae: Zae, watch: SchemaWatch, capsys: pytest.CaptureFixture[str],
) -> None:
    watch.start(lambda: read_schema_version(client("dynamodb", zae.endpoint_url), "missing"))
    zae.invoke_handler([bucket_record(zae)])
    assert batch_counts(capsys) == ([0], [])


def test_a_table_without_a_version_item_reads_none(zae: Zae) -> None:
    zae.ddb.put_item(TableName=zae.table, Item={"PK": s("x/BUCKET#a#b#0"), "SK": s("#STATE"),
                                                "rf": n(1)})
    other = f"{zae.table}-plain"
    zae.ddb.create_table(TableName=other, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                                    {"AttributeName": "SK", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                               {"AttributeName": "SK", "AttributeType": "S"}])
    assert read_schema_version(zae.ddb, other) is None
