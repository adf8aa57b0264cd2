"""The constructs work outside this repository, from the wheel as pip installs it.

The ``wheel`` fixture builds the wheel (``python -m build``); ``consumer_site`` installs it
offline into a folder of its own; ``consumer_assembly`` writes a small app in another
temporary directory, beside that app's *own* ``infra`` and ``aggregator`` packages, that
imports the constructs as the README shows and wraps its pre-existing table with the
minimal call ``StreamAggregator(stack, "Usage", table=table)``, with cdk-nag on. The app
itself checks that its own packages and the installed library were both imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def template(consumer_template: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(consumer_template.read_text())
    return loaded


def _resources(template: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == resource_type]


def test_installed_package_holds_the_construct_and_the_lambda_sources(
    consumer_site: Path,
) -> None:
    top_level = {p.name for p in consumer_site.iterdir() if not p.name.endswith(".dist-info")}
    assert top_level == {"cdk_stream_aggregator"}
    package = consumer_site / "cdk_stream_aggregator"
    assert (package / "stream_aggregator.py").is_file()
    assert (package / "py.typed").is_file()
    assert (package / "lambda_src" / "aggregator" / "handler.py").is_file()
    assert (package / "lambda_src" / "streamagg_engine" / "batch.py").is_file()
    (info,) = consumer_site.glob("cdk_stream_aggregator-*.dist-info")
    assert (info / "licenses" / "LICENSE").is_file()


def test_the_wheel_states_its_version_licence_and_the_cdk_nag_major_it_needs(
    consumer_site: Path,
) -> None:
    """cdk-nag 2 would ignore the constructs' acknowledgements: the wheel refuses it."""
    (info,) = consumer_site.glob("cdk_stream_aggregator-*.dist-info")
    metadata = (info / "METADATA").read_text()
    assert "Version: 0.2.0" in metadata
    assert "License-Expression: Apache-2.0" in metadata
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
                if line.startswith("Requires-Dist:")]
    assert "cdk-nag<4,>=3" in requires


def test_consumer_template_has_the_function_on_its_own_stream(
    template: dict[str, Any],
) -> None:
    (function,) = _resources(template, "AWS::Lambda::Function")
    assert function["Properties"]["Handler"] == "aggregator.handler.handler"
    (mapping,) = _resources(template, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["EventSourceArn"] == (
        "arn:aws:dynamodb:eu-west-1:123456789012:table/rate-limits/stream/"
        "2025-01-01T00:00:00.000"
    )
    assert mapping["Properties"]["BatchSize"] == 100
    assert _resources(template, "AWS::DynamoDB::Table") == []


def test_consumer_asset_holds_the_handler_and_no_boto3(
    consumer_assembly: Path, template: dict[str, Any]
) -> None:
    (function,) = _resources(template, "AWS::Lambda::Function")
    key = function["Properties"]["Code"]["S3Key"]
    assets = json.loads((consumer_assembly / "Consumer.assets.json").read_text())["files"]
    (source,) = (a["source"] for a in assets.values()
                 if any(d["objectKey"] == key for d in a["destinations"].values()))
    assert source["packaging"] == "zip"
    asset = consumer_assembly / source["path"]
    files = {p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()}
    assert "aggregator/handler.py" in files
    assert "streamagg_engine/batch.py" in files
    ours = {f for f in files if f.startswith(("aggregator/", "streamagg_engine/"))}
    assert all(f.endswith(".py") for f in ours)
    # zae-limiter's bucket maintenance and what it imports, copied at synth with their
    # distributions' metadata and licenses (README, "What the usage function's asset
    # carries"); nothing else
    assert {f.split("/")[0] for f in files} == {
        "aggregator", "streamagg_engine", "zae_limiter", "zae_limiter_aggregator", "cronsim",
        "tzdata", "zae_limiter-0.17.0.dist-info", "cronsim-2.8.dist-info",
        "tzdata-2026.6.dist-info"}
    assert not any("boto3" in f or "botocore" in f or "aiobotocore" in f for f in files)


def test_consumer_gets_the_alarms_and_the_dashboard(template: dict[str, Any]) -> None:
    names = {a["Properties"]["AlarmName"] for a in _resources(template, "AWS::CloudWatch::Alarm")}
    assert {"Consumer-Usage-errors", "Consumer-Usage-errors-warning"} <= names
    assert len(names) == 10
    assert len(_resources(template, "AWS::CloudWatch::Dashboard")) == 1
