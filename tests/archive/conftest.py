"""One synth for the archive tests: the construct's catalog in three shapes.

* ``Default``: ``StreamAggregator`` as a user gets it (archival on, a new bucket);
* ``Existing``: an existing archive bucket under ``logs/``;
* ``Standalone``: ``ArchiveCatalog`` on its own, a results access-log bucket passed in,
  two projected years, and a role given :meth:`ArchiveCatalog.grant_query`.

All three pass cdk-nag's AwsSolutions pack (synth raises otherwise).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Acknowledgment, App, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from aggregator.config import AggregatorConfig
from infra import StreamAggregator
from infra.archive_catalog import ArchiveCatalog
from tests.infra.support import source_table, synth_with_nag

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

STACKS = ("Default", "Existing", "Standalone")
EXISTING_BUCKET = "existing-audit-archive"
QUERY_ROLE_REASON = (
    "grant_query scopes object access to the archive prefix and the results bucket; "
    "object keys are not known in advance, so the object ARNs end in a wildcard."
)


def build(app: App) -> None:
    default = Stack(app, "Default")
    StreamAggregator(default, "Aggregator", table=source_table(default),
                     config=AggregatorConfig())
    existing = Stack(app, "Existing")
    StreamAggregator(
        existing, "Aggregator", table=source_table(existing),
        config=AggregatorConfig(archive_prefix="logs/"),
        archive_bucket=s3.Bucket.from_bucket_name(existing, "Archive", EXISTING_BUCKET),
    )
    standalone = Stack(app, "Standalone")
    logs = s3.Bucket.from_bucket_name(standalone, "Logs", "existing-access-logs")
    catalog = ArchiveCatalog(
        standalone, "Catalog",
        archive_bucket=s3.Bucket.from_bucket_name(standalone, "Archive", EXISTING_BUCKET),
        archive_prefix="audit/", name_prefix="Usage Archive", server_access_logs_bucket=logs,
        first_year=2024, last_year=2025,
    )
    role = iam.Role(standalone, "Analyst", assumed_by=iam.AccountRootPrincipal())
    catalog.grant_query(role)
    for resource in (f"arn:<AWS::Partition>:s3:::{EXISTING_BUCKET}/audit/*",
                     "<CatalogResultsBucketE45AF2E9.Arn>/*"):
        Validations.of(role).acknowledge(Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::{resource}]", reason=QUERY_ROLE_REASON))


@pytest.fixture(scope="session")
def catalog_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_with_nag(tmp_path_factory.mktemp("archive.out"), build)


@pytest.fixture(scope="session")
def catalog_templates(catalog_assembly: Path) -> dict[str, dict[str, Any]]:
    return {name: json.loads((catalog_assembly / f"{name}.template.json").read_text())
            for name in STACKS}


@pytest.fixture(scope="session")
def default_template(catalog_templates: dict[str, dict[str, Any]]) -> Template:
    return Template.from_json(catalog_templates["Default"])
