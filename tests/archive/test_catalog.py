"""ArchiveCatalog in the synthesized templates: one behaviour per test.

The stacks come from ``catalog_assembly`` (conftest), checked by cdk-nag; cfn-lint and
checkov run on them here too (the app's and the variants' templates are linted in
``tests/infra``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from cfnlint.api import ManualArgs, lint_file

from aggregator.config import AggregatorConfig
from infra import StreamAggregator
from infra.archive_catalog import (
    ARCHIVE_COLUMNS,
    JSON_SERDE,
    ArchiveCatalog,
    projection_parameters,
)
from tests.infra.support import source_table

from .conftest import EXISTING_BUCKET, STACKS


def _table_input(template: Template) -> dict[str, Any]:
    (table,) = template.find_resources("AWS::Glue::Table").values()
    result: dict[str, Any] = table["Properties"]["TableInput"]
    return result


def _template(templates: dict[str, dict[str, Any]], name: str) -> Template:
    return Template.from_json(templates[name])


def _bucket_id(template: Template, prefix: str) -> str:
    (logical_id,) = (lid for lid in template.find_resources("AWS::S3::Bucket")
                     if lid.startswith(prefix))
    return logical_id


# --- the Glue table --------------------------------------------------------------------


def test_table_projects_year_month_day_onto_the_archive_prefix(
    default_template: Template,
) -> None:
    bucket = _bucket_id(default_template, "AggregatorArchiveBucket")
    assert _table_input(default_template)["Parameters"] == {
        "EXTERNAL": "TRUE",
        "classification": "json",
        "compressionType": "gzip",
        "projection.enabled": "true",
        "projection.year.type": "integer",
        "projection.year.range": "2020,2100",
        "projection.year.digits": "4",
        "projection.month.type": "integer",
        "projection.month.range": "1,12",
        "projection.month.digits": "2",
        "projection.day.type": "integer",
        "projection.day.range": "1,31",
        "projection.day.digits": "2",
        "storage.location.template": {"Fn::Join": ["", [
            "s3://", {"Ref": bucket}, "/audit/year=${year}/month=${month}/day=${day}/"]]},
    }


def test_table_reads_gzip_json_lines_with_the_openx_serde(default_template: Template) -> None:
    bucket = _bucket_id(default_template, "AggregatorArchiveBucket")
    table = _table_input(default_template)
    assert table["Name"] == "audit_events"
    assert table["TableType"] == "EXTERNAL_TABLE"
    storage = table["StorageDescriptor"]
    assert storage["Location"] == {"Fn::Join": ["", ["s3://", {"Ref": bucket}, "/audit/"]]}
    assert storage["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert storage["SerdeInfo"] == {"SerializationLibrary": JSON_SERDE,
                                    "Parameters": {"case.insensitive": "FALSE"}}


def test_table_columns_and_partition_keys_are_the_archive_schema(
    default_template: Template,
) -> None:
    table = _table_input(default_template)
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    assert columns == [(c.name, c.type) for c in ARCHIVE_COLUMNS]
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [
        ("year", "int"), ("month", "int"), ("day", "int")]
    assert all(c["Comment"] for c in table["StorageDescriptor"]["Columns"])


def test_table_is_in_the_database_named_after_the_construct(default_template: Template) -> None:
    default_template.has_resource_properties("AWS::Glue::Database", {
        "CatalogId": {"Ref": "AWS::AccountId"},
        "DatabaseInput": Match.object_like({"Name": "default_aggregator_archive"}),
    })
    (database_id,) = default_template.find_resources("AWS::Glue::Database")
    default_template.has_resource_properties("AWS::Glue::Table", {
        "CatalogId": {"Ref": "AWS::AccountId"}, "DatabaseName": {"Ref": database_id},
    })


def test_an_existing_bucket_is_cataloged_under_its_prefix(
    catalog_templates: dict[str, dict[str, Any]],
) -> None:
    template = _template(catalog_templates, "Existing")
    parameters = _table_input(template)["Parameters"]
    assert parameters["storage.location.template"] == (
        f"s3://{EXISTING_BUCKET}/logs/year=${{year}}/month=${{month}}/day=${{day}}/")


def test_projected_years_and_names_follow_the_props(
    catalog_templates: dict[str, dict[str, Any]],
) -> None:
    template = _template(catalog_templates, "Standalone")
    assert _table_input(template)["Parameters"]["projection.year.range"] == "2024,2025"
    template.has_resource_properties("AWS::Glue::Database", {
        "DatabaseInput": Match.object_like({"Name": "usage_archive_archive"})})
    template.has_resource_properties("AWS::Athena::WorkGroup", {
        "Name": "Usage-Archive-archive"})


def test_projection_parameters_for_an_empty_prefix() -> None:
    parameters = projection_parameters("s3://b/", first_year=2020, last_year=2030)
    assert parameters["storage.location.template"] == (
        "s3://b/year=${year}/month=${month}/day=${day}/")


# --- the workgroup and its results bucket --------------------------------------------


def test_workgroup_enforces_encrypted_results_in_its_own_bucket(
    default_template: Template,
) -> None:
    results = _bucket_id(default_template, "AggregatorArchiveCatalogResultsBucket")
    default_template.has_resource_properties("AWS::Athena::WorkGroup", {
        "Name": "Default-Aggregator-archive",
        "State": "ENABLED",
        "WorkGroupConfiguration": {
            "EnforceWorkGroupConfiguration": True,
            "PublishCloudWatchMetricsEnabled": True,
            "RequesterPaysEnabled": False,
            "EngineVersion": {"SelectedEngineVersion": "Athena engine version 3"},
            "ResultConfiguration": {
                "OutputLocation": {"Fn::Join": ["", ["s3://", {"Ref": results}, "/"]]},
                "ExpectedBucketOwner": {"Ref": "AWS::AccountId"},
                "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
            },
        },
    })


def test_results_bucket_is_private_encrypted_and_expires_results(
    default_template: Template,
) -> None:
    results = _bucket_id(default_template, "AggregatorArchiveCatalogResultsBucket")
    logs = _bucket_id(default_template, "AggregatorAccessLogsBucket")
    resource = default_template.to_json()["Resources"][results]
    assert resource["DeletionPolicy"] == "Retain"
    props = resource["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True,
        "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": logs}, "LogFilePrefix": "athena-results-bucket/"}
    assert props["LifecycleConfiguration"]["Rules"] == [{
        "Id": "expire-query-results", "Status": "Enabled", "ExpirationInDays": 30,
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    }]


def test_results_bucket_denies_non_ssl_access(default_template: Template) -> None:
    results = _bucket_id(default_template, "AggregatorArchiveCatalogResultsBucket")
    default_template.has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": {"Ref": results},
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])},
    })


def test_with_an_existing_archive_bucket_results_log_to_a_bucket_of_the_catalogs_own(
    catalog_templates: dict[str, dict[str, Any]],
) -> None:
    template = _template(catalog_templates, "Existing")
    logs = _bucket_id(template, "AggregatorArchiveCatalogAccessLogsBucket")
    template.has_resource_properties("AWS::S3::Bucket", {
        "LoggingConfiguration": {"DestinationBucketName": {"Ref": logs},
                                 "LogFilePrefix": "athena-results-bucket/"}})
    bucket = template.find_resources("AWS::S3::Bucket")[logs]
    assert [skip["id"] for skip in bucket["Metadata"]["checkov"]["skip"]] == ["CKV_AWS_18"]


def test_the_aggregator_function_gets_no_query_permissions(default_template: Template) -> None:
    for policy in default_template.find_resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            assert not [a for a in actions if a.startswith(("glue:", "athena:"))]


# --- grant_query ---------------------------------------------------------------------


def test_grant_query_allows_exactly_what_a_query_needs(
    catalog_templates: dict[str, dict[str, Any]],
) -> None:
    template = _template(catalog_templates, "Standalone")
    (policy,) = template.find_resources("AWS::IAM::Policy").values()
    results = _bucket_id(template, "CatalogResultsBucket")
    results_arn = {"Fn::GetAtt": [results, "Arn"]}

    def arn(service: str, rest: str) -> dict[str, Any]:
        return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":{service}:",
                                  {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"},
                                  f":{rest}"]]}

    def s3_arn(rest: str) -> dict[str, Any]:
        return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":s3:::{rest}"]]}

    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {"Action": ["athena:StartQueryExecution", "athena:StopQueryExecution",
                    "athena:GetQueryExecution", "athena:GetQueryResults",
                    "athena:GetWorkGroup"],
         "Effect": "Allow", "Resource": arn("athena", "workgroup/Usage-Archive-archive")},
        {"Action": ["glue:GetDatabase", "glue:GetTable"], "Effect": "Allow",
         "Resource": [arn("glue", "catalog"), arn("glue", "database/usage_archive_archive"),
                      arn("glue", "table/usage_archive_archive/audit_events")]},
        {"Action": "s3:GetObject", "Effect": "Allow",
         "Resource": s3_arn(f"{EXISTING_BUCKET}/audit/*")},
        {"Action": "s3:ListBucket", "Effect": "Allow", "Resource": s3_arn(EXISTING_BUCKET),
         "Condition": {"StringLike": {"s3:prefix": ["audit/*"]}}},
        {"Action": "s3:GetBucketLocation", "Effect": "Allow",
         "Resource": [s3_arn(EXISTING_BUCKET), results_arn]},
        {"Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"], "Effect": "Allow",
         "Resource": results_arn},
        {"Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"], "Effect": "Allow",
         "Resource": {"Fn::Join": ["", [results_arn, "/*"]]}},
    ]


# --- on, off, and bad props ----------------------------------------------------------


def _aggregator_stack(**kwargs: Any) -> Template:
    stack = Stack(App(), "Probe")
    config = kwargs.pop("config", AggregatorConfig())
    StreamAggregator(stack, "Aggregator", table=source_table(stack), config=config, **kwargs)
    return Template.from_stack(stack)


def test_archive_catalog_false_leaves_glue_and_athena_out() -> None:
    template = _aggregator_stack(archive_catalog=False)
    for resource_type in ("AWS::Glue::Database", "AWS::Glue::Table", "AWS::Athena::WorkGroup"):
        template.resource_count_is(resource_type, 0)
    template.resource_count_is("AWS::S3::Bucket", 2)  # the archive and its access logs


def test_archival_off_has_no_catalog() -> None:
    template = _aggregator_stack(config=AggregatorConfig(enable_archival=False))
    template.resource_count_is("AWS::Glue::Table", 0)
    template.resource_count_is("AWS::Athena::WorkGroup", 0)


def test_archive_catalog_true_with_archival_off_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"archive_catalog is true but config\.enable_archival"):
        _aggregator_stack(config=AggregatorConfig(enable_archival=False), archive_catalog=True)


def test_a_prefix_that_is_not_a_folder_is_refused() -> None:
    with pytest.raises(ValueError, match="must be empty or end with '/'"):
        _aggregator_stack(config=AggregatorConfig(archive_prefix="audit"))


@pytest.mark.parametrize(("first", "last"), [(2030, 2020), (1900, 2000)])
def test_projected_years_out_of_order_are_refused(first: int, last: int) -> None:
    stack = Stack(App(), "Probe")
    with pytest.raises(ValueError, match="first_year and last_year"):
        ArchiveCatalog(stack, "Catalog",
                       archive_bucket=s3.Bucket.from_bucket_name(stack, "B", "some-bucket"),
                       archive_prefix="audit/", name_prefix="x", first_year=first,
                       last_year=last)


def test_a_name_prefix_without_letters_is_refused() -> None:
    stack = Stack(App(), "Probe")
    with pytest.raises(ValueError, match="no letters or digits"):
        ArchiveCatalog(stack, "Catalog",
                       archive_bucket=s3.Bucket.from_bucket_name(stack, "B", "some-bucket"),
                       archive_prefix="audit/", name_prefix="--")


# --- the linters -----------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_catalog_templates_pass_cfn_lint(catalog_assembly: Path, name: str) -> None:
    template = catalog_assembly / f"{name}.template.json"
    findings = [(m.rule.id, m.message) for m in lint_file(template, ManualArgs(
        regions=["us-east-1"])) if m.rule.severity in {"error", "warning"}]
    known_w3005 = [f for f in findings if f[0] == "W3005"]  # aws-cdk-lib's Lambda DependsOn
    assert [f for f in findings if f not in known_w3005] == []


@pytest.mark.parametrize("name", STACKS)
def test_catalog_templates_fail_no_checkov_check(catalog_assembly: Path, name: str) -> None:
    template = catalog_assembly / f"{name}.template.json"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("checkov")), "-f", str(template),
         "--framework", "cloudformation", "-o", "json", "--skip-download"],
        capture_output=True, text=True, check=False, cwd=catalog_assembly,
    )
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    # The test's own source table (AWS-managed encryption) is not the construct's.
    assert [f for f in failed if not f[1].startswith("AWS::DynamoDB::Table.")] == []
    passed = {(c["check_id"], c["resource"].split(".")[0])
              for c in report["results"]["passed_checks"]}
    assert ("CKV_AWS_82", "AWS::Athena::WorkGroup") in passed  # enforces its configuration
