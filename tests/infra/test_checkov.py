"""checkov (CloudFormation framework) fails nothing outside the reviewed skip list.

Each skip is written into the template as ``Metadata.checkov.skip`` on its resource,
with its reason (see ``infra/suppressions.py``), so a consumer running checkov on their
own app inherits them. The reviewed list, by check and resource type:

* CKV_AWS_116 (Lambda DLQ), Lambda function: stream-invoked, failures go to the
  mapping's on-failure destination, not to an async-invocation DLQ.
* CKV_AWS_117 (Lambda in a VPC), Lambda function: only AWS APIs over TLS and IAM.
* CKV_AWS_173 (env vars encrypted with a CMK), Lambda function: configuration, no secrets.
* CKV_AWS_115 (reserved concurrency), Lambda function: concurrency is bounded by the
  stream; only when ``reserved_concurrency`` is not set.
* CKV_AWS_158 (log group KMS), log group: no secrets, encrypted at rest by CloudWatch Logs.
* CKV_AWS_18 (access logging), the access-log bucket itself: logging it into itself loops.
* CKV_AWS_119 (DynamoDB CMK), the stack's table: AWS-managed key, as zae-limiter does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .support import CONSUMER_STACK, STACK_NAME, CheckovReport, checkov

REVIEWED_SKIPS = {
    ("CKV_AWS_116", "AWS::Lambda::Function"),
    ("CKV_AWS_117", "AWS::Lambda::Function"),
    ("CKV_AWS_173", "AWS::Lambda::Function"),
    ("CKV_AWS_115", "AWS::Lambda::Function"),
    ("CKV_AWS_158", "AWS::Logs::LogGroup"),
    ("CKV_AWS_18", "AWS::S3::Bucket"),
}
"""The construct's own skips; the app's stack adds :data:`STACK_SKIPS`."""
STACK_SKIPS = {("CKV_AWS_119", "AWS::DynamoDB::Table")}


def _skips(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["check_id"], c["resource"].split(".")[0])
            for c in report["results"]["skipped_checks"]}


@pytest.fixture(scope="module")
def app_report(app_checkov: dict[str, CheckovReport]) -> CheckovReport:
    return app_checkov[STACK_NAME]


@pytest.fixture(scope="module")
def consumer_report(consumer_template: Path) -> CheckovReport:
    return checkov([consumer_template])[CONSUMER_STACK]


def test_app_template_fails_no_check(app_report: dict[str, Any]) -> None:
    failed = [(c["check_id"], c["resource"]) for c in app_report["results"]["failed_checks"]]
    assert failed == []
    assert app_report["summary"]["parsing_errors"] == 0
    assert app_report["summary"]["passed"] > 30


def test_app_template_skips_only_the_reviewed_checks(app_report: dict[str, Any]) -> None:
    assert _skips(app_report) == REVIEWED_SKIPS | STACK_SKIPS


def test_every_skip_has_a_reason(app_report: dict[str, Any]) -> None:
    for check in app_report["results"]["skipped_checks"]:
        assert len(check["check_result"]["suppress_comment"].split()) >= 8, check["check_id"]


def test_consumer_template_fails_no_check(consumer_report: dict[str, Any]) -> None:
    """The construct's skips travel with it into a consumer's app."""
    assert consumer_report["results"]["failed_checks"] == []
    assert _skips(consumer_report) == REVIEWED_SKIPS
