"""The construct works outside this repository, from the package as pip installs it.

The ``consumer_assembly`` fixture installs this repository with ``pip install --no-deps
--target <tmp>/site .``, writes a small app in another temporary directory that wraps
its own pre-existing table (``Table.from_table_attributes(..., table_stream_arn=...)``)
with ``StreamAggregator``, runs it with this venv's Python, ``PYTHONPATH=<tmp>/site`` and
that directory as the working directory, with cdk-nag on. The app itself checks that
``infra`` and ``aggregator`` were imported from the installed copy.
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
    assert (consumer_site / "infra" / "stream_aggregator.py").is_file()
    assert (consumer_site / "infra" / "alarms.py").is_file()
    assert (consumer_site / "aggregator" / "handler.py").is_file()


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
    assert mapping["Properties"]["BatchSize"] == 500
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
    assert all(f.startswith("aggregator/") and f.endswith(".py") for f in files)
    assert not any("boto3" in f or "botocore" in f for f in files)


def test_consumer_gets_the_alarms_and_the_dashboard(template: dict[str, Any]) -> None:
    names = {a["Properties"]["AlarmName"] for a in _resources(template, "AWS::CloudWatch::Alarm")}
    assert "Consumer-Usage-errors" in names
    assert len(names) == 8
    assert len(_resources(template, "AWS::CloudWatch::Dashboard")) == 1
