"""cdk-nag's AWS Solutions pack finds nothing that is not acknowledged with a reason.

Each synth fixture raises on an unacknowledged finding, and its report is empty. The
acknowledgements live next to what they cover (``Validations.of(x).acknowledge``); the
cloud assembly records them with their reasons, which are checked here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support import STACK_NAME

APP_ACKNOWLEDGEMENTS = {
    "AwsSolutions-SQS3": "/Aggregator/DeadLetterQueue",
    "AwsSolutions-S1": "/Aggregator/AccessLogsBucket",
    "AwsSolutions-IAM5[Resource::*]": "/Aggregator/Role",
    "AwsSolutions-IAM5[Resource::<AggregatorArchiveBucket14CE65EB.Arn>/audit/*]":
        "/Aggregator/Role",
}
"""Every acknowledged finding of the app, and the construct (under the stack) it is on."""


@pytest.fixture(scope="module")
def assemblies(app_assembly: Path, variants_assembly: Path,
               consumer_assembly: Path) -> dict[str, Path]:
    return {"app": app_assembly, "variants": variants_assembly, "consumer": consumer_assembly}


@pytest.mark.parametrize("assembly", ["app", "variants", "consumer"])
def test_synth_has_an_empty_cdk_nag_report(assembly: str, assemblies: dict[str, Path]) -> None:
    report = json.loads((assemblies[assembly] / "validation-report.json").read_text())
    assert report["pluginReports"] == []


def _acknowledgements(metadata_file: Path) -> dict[tuple[str, str], str]:
    """(construct path, rule id) -> reason, from a stack's ``*.metadata.json``."""
    found: dict[tuple[str, str], str] = {}
    for path, entries in json.loads(metadata_file.read_text()).items():
        for entry in entries:
            if entry["type"] == "aws:cdk:acknowledged-rules":
                for rule, reason in entry["data"].items():
                    found[(path, rule.removeprefix("Annotation::"))] = reason
    return found


def test_app_acknowledges_exactly_the_reviewed_findings(app_assembly: Path) -> None:
    found = _acknowledgements(app_assembly / f"{STACK_NAME}.metadata.json")
    assert {rule: path for path, rule in found} == {
        rule: f"/{STACK_NAME}{path}" for rule, path in APP_ACKNOWLEDGEMENTS.items()
    }


def test_every_acknowledgement_has_a_written_reason(app_assembly: Path) -> None:
    found = _acknowledgements(app_assembly / f"{STACK_NAME}.metadata.json")
    assert found
    for (path, rule), reason in found.items():
        assert len(reason.split()) >= 8, (path, rule, reason)
