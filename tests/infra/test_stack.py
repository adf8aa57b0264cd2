"""AggregatorStack: one behaviour per test, against the template ``cdk synth`` produces."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Match, Template

from aggregator.config import AggregatorConfig
from infra import AggregatorStack
from infra.parts import RUNTIME
from infra.stacks.aggregator_stack import config_from_context
from infra.stream_aggregator import DEFAULTS
from streamagg_engine.errors import ConfigError

RESOURCE_ENV = {"TABLE_NAME", "SNAPSHOT_TABLE_NAME", "ARCHIVE_BUCKET_NAME"}


Context = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def template(app_template: Template) -> Template:
    """The app's template as ``cdk synth`` writes it (shared with cdk-nag, cfn-lint, checkov)."""
    return app_template


def _ref(template: Template, resource_type: str) -> dict[str, str]:
    (logical_id,) = template.find_resources(resource_type)
    return {"Ref": logical_id}


def _get_att(template: Template, resource_type: str, attribute: str) -> dict[str, Any]:
    (logical_id,) = template.find_resources(resource_type)
    return {"Fn::GetAtt": [logical_id, attribute]}


def _statements(template: Template) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _archive_bucket_id(template: Template) -> str:
    """The construct's archive bucket (the archive catalog's results bucket logs too)."""
    (logical_id,) = (lid for lid in template.find_resources("AWS::S3::Bucket")
                     if lid.startswith("AggregatorArchiveBucket"))
    return logical_id


def _logs_bucket_id(template: Template) -> str:
    (logical_id,) = (lid for lid in template.find_resources("AWS::S3::Bucket")
                     if lid.startswith("AggregatorAccessLogsBucket"))
    return logical_id


# --- table -------------------------------------------------------------------------


def test_table_has_pk_and_sk_string_keys(template: Template) -> None:
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": Match.array_with([
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ]),
    })


def test_table_has_gsi2_projecting_all(template: Template) -> None:
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "GlobalSecondaryIndexes": Match.array_with([{
            "IndexName": "GSI2",
            "KeySchema": [
                {"AttributeName": "GSI2PK", "KeyType": "HASH"},
                {"AttributeName": "GSI2SK", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }]),
        "AttributeDefinitions": Match.array_with([
            {"AttributeName": "GSI2PK", "AttributeType": "S"},
            {"AttributeName": "GSI2SK", "AttributeType": "S"},
        ]),
    })


def test_table_schema_is_zae_limiters_own(template: Template) -> None:
    """Keys, attributes and every index as zae-limiter creates its table (its client
    queries GSI3/GSI4, and local indexes cannot be added to an existing table)."""
    from zae_limiter import schema  # noqa: PLC0415 - a test-only dependency

    expected = schema.get_table_definition("any")
    (table,) = template.find_resources("AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["KeySchema"] == expected["KeySchema"]

    def by_name(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return {item[key]: item for item in items}

    assert by_name(props["AttributeDefinitions"], "AttributeName") == by_name(
        expected["AttributeDefinitions"], "AttributeName"
    )
    assert by_name(props["GlobalSecondaryIndexes"], "IndexName") == by_name(
        expected["GlobalSecondaryIndexes"], "IndexName"
    )
    assert by_name(props["LocalSecondaryIndexes"], "IndexName") == by_name(
        expected["LocalSecondaryIndexes"], "IndexName"
    )


def test_table_ttl_attribute_is_ttl(template: Template) -> None:
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
    })


def test_table_streams_new_and_old_images(template: Template) -> None:
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
    })


def test_table_is_on_demand(template: Template) -> None:
    template.has_resource_properties("AWS::DynamoDB::Table", {"BillingMode": "PAY_PER_REQUEST"})


def test_table_has_point_in_time_recovery(template: Template) -> None:
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
    })


def test_table_is_retained(template: Template) -> None:
    template.has_resource("AWS::DynamoDB::Table", {
        "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
    })


def test_table_has_deletion_protection(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table", {"DeletionProtectionEnabled": True}
    )


def test_table_is_encrypted(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table", {"SSESpecification": {"SSEEnabled": True}}
    )


def test_table_name_is_not_hard_coded(template: Template) -> None:
    template.has_resource_properties("AWS::DynamoDB::Table", {"TableName": Match.absent()})


# --- function ----------------------------------------------------------------------


def test_function_runs_the_newest_python_runtime(template: Template) -> None:
    assert RUNTIME.name == "python3.14"
    template.has_resource_properties("AWS::Lambda::Function", {"Runtime": "python3.14"})


def test_function_is_arm64(template: Template) -> None:
    template.has_resource_properties("AWS::Lambda::Function", {"Architectures": ["arm64"]})


def test_function_handler(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function", {"Handler": "aggregator.handler.handler"}
    )


def test_function_memory_and_timeout_defaults(template: Template) -> None:
    template.has_resource_properties("AWS::Lambda::Function", {
        "MemorySize": 1769, "Timeout": 60,
    })


def test_function_environment_is_the_config_from_context(
    template: Template, cdk_context: Context
) -> None:
    config = config_from_context(cdk_context())
    expected = {k: v for k, v in config.to_env().items() if k not in RESOURCE_ENV}
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    variables = function["Properties"]["Environment"]["Variables"]
    assert {k: v for k, v in variables.items() if k not in RESOURCE_ENV} == expected


def test_function_environment_names_the_actual_resources(template: Template) -> None:
    table = _ref(template, "AWS::DynamoDB::Table")
    template.has_resource_properties("AWS::Lambda::Function", {
        "Environment": {"Variables": Match.object_like({
            "TABLE_NAME": table,
            "SNAPSHOT_TABLE_NAME": table,
            "ARCHIVE_BUCKET_NAME": {"Ref": _archive_bucket_id(template)},
        })},
    })


def test_function_logs_to_its_own_log_group_with_retention(template: Template) -> None:
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})
    template.has_resource_properties("AWS::Lambda::Function", {
        "LoggingConfig": {"LogGroup": _ref(template, "AWS::Logs::LogGroup")},
    })


def test_function_log_format_is_text(template: Template) -> None:
    """The handler's own JSON lines and EMF lines pass through unchanged (see the module
    docstring of infra.stream_aggregator)."""
    template.has_resource_properties("AWS::Lambda::Function", {
        "LoggingConfig": Match.object_like({"LogFormat": "Text"}),
    })


def test_function_has_no_reserved_concurrency_by_default(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function", {"ReservedConcurrentExecutions": Match.absent()}
    )


def test_log_group_is_retained(template: Template) -> None:
    template.has_resource("AWS::Logs::LogGroup", {
        "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
    })


def test_role_has_no_managed_policies(template: Template) -> None:
    template.has_resource_properties("AWS::IAM::Role", {"ManagedPolicyArns": Match.absent()})


def test_no_custom_resources(template: Template) -> None:
    """moto cannot run custom resources (logRetention, autoDeleteObjects, email
    subscriptions through a Lambda): none at all."""
    types = {r["Type"] for r in template.to_json()["Resources"].values()}
    assert not {t for t in types if t.startswith("Custom::")}
    assert "AWS::CloudFormation::CustomResource" not in types
    template.resource_count_is("AWS::Lambda::Function", 1)


# --- event source mapping ----------------------------------------------------------


def test_esm_reads_the_table_stream_into_the_function(template: Template) -> None:
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "EventSourceArn": _get_att(template, "AWS::DynamoDB::Table", "StreamArn"),
        "FunctionName": _ref(template, "AWS::Lambda::Function"),
    })


def test_esm_starts_at_trim_horizon(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"StartingPosition": "TRIM_HORIZON"}
    )


def test_esm_bisects_a_failing_batch(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"BisectBatchOnFunctionError": True}
    )


def test_esm_reports_batch_item_failures(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"FunctionResponseTypes": ["ReportBatchItemFailures"]}
    )


def test_esm_retry_attempts_default(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"MaximumRetryAttempts": DEFAULTS.retry_attempts}
    )


def test_esm_max_record_age_is_six_hours(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"MaximumRecordAgeInSeconds": 6 * 3600}
    )


def test_esm_batch_size_from_context_and_window_default(
    template: Template, cdk_context: Context
) -> None:
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "BatchSize": cdk_context()["batch_size"],
        "MaximumBatchingWindowInSeconds": 1,
    })


def test_esm_parallelization_factor_default(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"ParallelizationFactor": 1}
    )


def test_esm_sends_failures_to_the_dlq(template: Template) -> None:
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "DestinationConfig": {"OnFailure": {
            "Destination": _get_att(template, "AWS::SQS::Queue", "Arn"),
        }},
    })


def test_esm_filters_records_the_config_ignores(template: Template) -> None:
    """Default filter criteria from the config: by event name, the only safe operator."""
    (mapping,) = template.find_resources("AWS::Lambda::EventSourceMapping").values()
    filters = mapping["Properties"]["FilterCriteria"]["Filters"]
    assert [json.loads(f["Pattern"]) for f in filters] == [
        {"eventName": ["INSERT", "MODIFY", "REMOVE"]}]


def test_esm_has_no_tumbling_window(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"TumblingWindowInSeconds": Match.absent()}
    )


def test_esm_is_created_after_the_role_policy(template: Template) -> None:
    (policy_id,) = template.find_resources("AWS::IAM::Policy")
    template.has_resource("AWS::Lambda::EventSourceMapping", {
        "DependsOn": Match.array_with([policy_id]),
    })


# --- dead-letter queue -------------------------------------------------------------


def test_dlq_is_encrypted_with_the_constructs_key(template: Template) -> None:
    template.has_resource_properties("AWS::SQS::Queue", {
        "KmsMasterKeyId": _get_att(template, "AWS::KMS::Key", "Arn"),
    })


# --- KMS key -----------------------------------------------------------------------


def test_key_rotates(template: Template) -> None:
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_key_is_retained(template: Template) -> None:
    template.has_resource("AWS::KMS::Key", {
        "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
    })


def test_key_lets_cloudwatch_publish_alarms_to_the_topic(template: Template) -> None:
    template.has_resource_properties("AWS::KMS::Key", {"KeyPolicy": {"Statement": Match.array_with([
        {
            "Sid": "AllowCloudWatchAlarmsToPublish",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        },
    ])}})


# --- alarm topic -------------------------------------------------------------------


def test_alarm_topic_is_encrypted_with_the_constructs_key(template: Template) -> None:
    template.has_resource_properties("AWS::SNS::Topic", {
        "KmsMasterKeyId": _get_att(template, "AWS::KMS::Key", "Arn"),
    })


def test_alarm_topic_denies_non_ssl_publishing(template: Template) -> None:
    template.has_resource_properties("AWS::SNS::TopicPolicy", {
        "Topics": [_ref(template, "AWS::SNS::Topic")],
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        })])},
    })


def test_alarm_topic_has_no_subscriptions_without_alarm_email(template: Template) -> None:
    template.resource_count_is("AWS::SNS::Subscription", 0)


def test_dlq_keeps_messages_14_days(template: Template) -> None:
    template.has_resource_properties(
        "AWS::SQS::Queue", {"MessageRetentionPeriod": 14 * 24 * 3600}
    )


def test_dlq_denies_non_ssl_access(template: Template) -> None:
    template.has_resource_properties("AWS::SQS::QueuePolicy", {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        })])},
    })


# --- archive bucket ----------------------------------------------------------------


def test_archive_bucket_blocks_public_access(template: Template) -> None:
    template.has_resource_properties("AWS::S3::Bucket", {
        "LoggingConfiguration": Match.any_value(),
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
    })


def test_archive_bucket_is_s3_managed_encrypted(template: Template) -> None:
    template.has_resource_properties("AWS::S3::Bucket", {
        "LoggingConfiguration": Match.any_value(),
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}},
        ]},
    })


def test_archive_bucket_is_versioned(template: Template) -> None:
    template.has_resource_properties("AWS::S3::Bucket", {
        "LoggingConfiguration": Match.any_value(),
        "VersioningConfiguration": {"Status": "Enabled"},
    })


def test_archive_bucket_tiers_objects_and_expires_old_versions(template: Template) -> None:
    template.has_resource_properties("AWS::S3::Bucket", {
        "LoggingConfiguration": Match.any_value(),
        "LifecycleConfiguration": {"Rules": [{
            "Id": "archive-tiering",
            "Status": "Enabled",
            "Transitions": [
                {"StorageClass": "STANDARD_IA", "TransitionInDays": 90},
                {"StorageClass": "GLACIER_IR", "TransitionInDays": 365},
            ],
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        }]},
    })


def test_access_logs_bucket_is_private_versioned_and_expires_logs(template: Template) -> None:
    bucket = template.find_resources("AWS::S3::Bucket")[_logs_bucket_id(template)]
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["LifecycleConfiguration"]["Rules"] == [{
        "Id": "expire-access-logs", "Status": "Enabled", "ExpirationInDays": 365,
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
    }]


def test_archive_bucket_is_retained(template: Template) -> None:
    bucket = template.to_json()["Resources"][_archive_bucket_id(template)]
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["UpdateReplacePolicy"] == "Retain"


def test_archive_bucket_denies_non_ssl_access(template: Template) -> None:
    template.has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": {"Ref": _archive_bucket_id(template)},
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        })])},
    })


def test_archive_bucket_logs_access_to_its_own_log_bucket(template: Template) -> None:
    buckets = template.find_resources("AWS::S3::Bucket")
    logs_id = _logs_bucket_id(template)
    template.has_resource_properties("AWS::S3::Bucket", {
        "LoggingConfiguration": {
            "DestinationBucketName": {"Ref": logs_id},
            "LogFilePrefix": "archive-bucket/",
        },
    })
    assert buckets[logs_id]["DeletionPolicy"] == "Retain"


# --- IAM ---------------------------------------------------------------------------

MAINTENANCE_ACTIONS = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem",
                       "dynamodb:ConditionCheckItem"]


def test_policy_reads_the_stream_only(template: Template) -> None:
    stream = _get_att(template, "AWS::DynamoDB::Table", "StreamArn")
    assert {
        "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
        "Effect": "Allow",
        "Resource": stream,
    } in _statements(template)


def test_policy_writes_snapshots_to_the_table_only(template: Template) -> None:
    """Snapshots share the source table, so one statement holds what they need (``GetItem``,
    ``UpdateItem``) and what zae-limiter's bucket maintenance calls on it (``PutItem`` for a
    new shard, ``ConditionCheckItem`` in a quota clone's transaction)."""
    table = _get_att(template, "AWS::DynamoDB::Table", "Arn")
    assert {
        "Action": MAINTENANCE_ACTIONS,
        "Effect": "Allow",
        "Resource": table,
    } in _statements(template)


def test_policy_wildcard_resource_only_for_list_streams(template: Template) -> None:
    """ListStreams has no resource-level permissions; every other action is scoped."""
    wildcard = [s for s in _statements(template) if s["Resource"] == "*"]
    assert wildcard == [{"Action": "dynamodb:ListStreams", "Effect": "Allow", "Resource": "*"}]


def test_policy_puts_archive_objects_under_the_prefix_only(template: Template) -> None:
    bucket_arn = {"Fn::GetAtt": [_archive_bucket_id(template), "Arn"]}
    s3_statements = [
        s for s in _statements(template) if any(a.startswith("s3:") for a in _actions(s))
    ]
    assert s3_statements == [{
        "Action": "s3:PutObject",
        "Effect": "Allow",
        "Resource": {"Fn::Join": ["", [bucket_arn, "/audit/*"]]},
    }]


def test_policy_sends_to_the_dlq_only(template: Template) -> None:
    queue = _get_att(template, "AWS::SQS::Queue", "Arn")
    sqs = [s for s in _statements(template) if any(a.startswith("sqs:") for a in _actions(s))]
    assert sqs == [{"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": queue}]


def test_policy_uses_the_key_only_to_send_to_the_dlq(template: Template) -> None:
    key = _get_att(template, "AWS::KMS::Key", "Arn")
    kms = [s for s in _statements(template) if any(a.startswith("kms:") for a in _actions(s))]
    assert kms == [{
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Effect": "Allow", "Resource": key,
    }]


def test_policy_has_nothing_else(template: Template) -> None:
    """Every statement of the role's only policy, in full: the least-privilege contract."""
    table, stream = (_get_att(template, "AWS::DynamoDB::Table", a) for a in ("Arn", "StreamArn"))
    bucket_arn = {"Fn::GetAtt": [_archive_bucket_id(template), "Arn"]}
    assert _statements(template) == [
        {"Action": "dynamodb:ListStreams", "Effect": "Allow", "Resource": "*"},
        {"Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator"], "Effect": "Allow", "Resource": stream},
        {"Action": MAINTENANCE_ACTIONS, "Effect": "Allow", "Resource": table},
        {"Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Effect": "Allow",
         "Resource": _get_att(template, "AWS::Logs::LogGroup", "Arn")},
        {"Action": "s3:PutObject", "Effect": "Allow",
         "Resource": {"Fn::Join": ["", [bucket_arn, "/audit/*"]]}},
        {"Action": "sqs:SendMessage", "Effect": "Allow",
         "Resource": _get_att(template, "AWS::SQS::Queue", "Arn")},
        {"Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Effect": "Allow",
         "Resource": _get_att(template, "AWS::KMS::Key", "Arn")},
    ]


def test_policy_writes_logs_to_its_log_group_only(template: Template) -> None:
    log_group = _get_att(template, "AWS::Logs::LogGroup", "Arn")
    assert {
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Effect": "Allow",
        "Resource": log_group,
    } in _statements(template)


# --- outputs -----------------------------------------------------------------------


def test_outputs_name_every_resource_a_client_needs(template: Template) -> None:
    outputs = template.to_json()["Outputs"]
    assert outputs["TableName"]["Value"] == _ref(template, "AWS::DynamoDB::Table")
    assert outputs["TableStreamArn"]["Value"] == _get_att(
        template, "AWS::DynamoDB::Table", "StreamArn"
    )
    assert outputs["FunctionName"]["Value"] == _ref(template, "AWS::Lambda::Function")
    assert outputs["DeadLetterQueueUrl"]["Value"] == _ref(template, "AWS::SQS::Queue")
    assert outputs["ArchiveBucketName"]["Value"] == {"Ref": _archive_bucket_id(template)}
    assert outputs["AlarmTopicArn"]["Value"] == _ref(template, "AWS::SNS::Topic")
    assert outputs["DashboardName"]["Value"] == _ref(template, "AWS::CloudWatch::Dashboard")


# --- context -----------------------------------------------------------------------


def test_context_values_reach_the_function_environment(cdk_context: Context) -> None:
    context = cdk_context(
        snapshot_windows=["monthly"], snapshot_ttl_days="7", enable_archival="false",
        batch_size="250",
    )
    template = Template.from_stack(AggregatorStack(App(context=context), "Custom"))
    template.has_resource_properties("AWS::Lambda::Function", {
        "Environment": {"Variables": Match.object_like({
            "SNAPSHOT_WINDOWS": "monthly",
            "SNAPSHOT_TTL_DAYS": "7",
            "ENABLE_ARCHIVAL": "false",
            "ARCHIVE_BUCKET_NAME": "",
        })},
    })
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {"BatchSize": 250})
    template.resource_count_is("AWS::S3::Bucket", 0)
    assert "ArchiveBucketName" not in template.to_json()["Outputs"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("snapshot_windows", "hourly,weekly",
     r"^snapshot_windows \(SNAPSHOT_WINDOWS\): unknown window 'weekly'"),
    ("snapshot_ttl_days", "ninety",
     r"^snapshot_ttl_days \(SNAPSHOT_TTL_DAYS\): 'ninety' is not a whole"),
    ("snapshot_ttl_days", -1, r"^snapshot_ttl_days \(SNAPSHOT_TTL_DAYS\): -1 must be"),
    ("enable_archival", "maybe",
     r"^enable_archival \(ENABLE_ARCHIVAL\): 'maybe' is not a boolean"),
    ("log_level", "LOUD", r"^log_level \(LOG_LEVEL\): 'LOUD' is not"),
])
def test_bad_context_fails_synth_naming_the_setting(
    cdk_context: Context, key: str, value: Any, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        AggregatorStack(App(context=cdk_context(**{key: value})), "Bad")


@pytest.mark.parametrize(("value", "message"), [
    ("lots", r"^batch_size \(context\): 'lots' is not a whole number"),
    (0, r"^batch_size must be a whole number from 1 to 10000, got 0"),
])
def test_bad_batch_size_context_fails_synth(cdk_context: Context, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AggregatorStack(App(context=cdk_context(batch_size=value)), "Bad")


@pytest.mark.parametrize("key", ["snapshot_table_name", "archive_bucket_name"])
def test_context_cannot_set_names_the_construct_owns(key: str) -> None:
    with pytest.raises(ValueError, match=rf"^{key}: not a configurable"):
        config_from_context({key: "mine"})


def test_context_table_name_names_the_table(cdk_context: Context) -> None:
    stack = AggregatorStack(App(context=cdk_context(table_name="rate-limits")), "Named")
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::DynamoDB::Table", {"TableName": "rate-limits"})


def test_bad_context_table_name_fails_synth(cdk_context: Context) -> None:
    with pytest.raises(ConfigError, match=r"^table_name \(TABLE_NAME\): 'a b' is not a valid"):
        AggregatorStack(App(context=cdk_context(table_name="a b")), "Bad")


def test_config_from_context_accepts_json_and_cli_strings() -> None:
    from_json = config_from_context({"snapshot_windows": ["hourly"], "enable_archival": False})
    from_cli = config_from_context({"snapshot_windows": "hourly", "enable_archival": "false"})
    assert from_json == from_cli
    assert from_json == AggregatorConfig(
        snapshot_windows=from_json.snapshot_windows, enable_archival=False
    )


# --- construct settings from the context ---------------------------------------------

CONSTRUCT_CONTEXT = {
    "alarm_email": "ops@example.com, oncall@example.com",
    "timeout_seconds": "120",
    "memory_size": 1024,
    "reserved_concurrency": "4",
    "log_retention_days": 90,
    "parallelization_factor": "2",
    "max_batching_window_seconds": 5,
    "retry_attempts": "3",
}


@pytest.fixture(scope="module")
def configured(cdk_context: Context) -> Template:
    """The stack with every construct setting set in the context (as ``-c`` strings or
    ``cdk.json`` numbers)."""
    return Template.from_stack(
        AggregatorStack(App(context=cdk_context(**CONSTRUCT_CONTEXT)), "Configured")
    )


def test_context_alarm_email_subscribes_each_address(configured: Template) -> None:
    for address in ("ops@example.com", "oncall@example.com"):
        configured.has_resource_properties(
            "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": address}
        )
    configured.resource_count_is("AWS::SNS::Subscription", 2)


def test_context_function_settings_reach_the_function(configured: Template) -> None:
    configured.has_resource_properties("AWS::Lambda::Function", {
        "Timeout": 120, "MemorySize": 1024, "ReservedConcurrentExecutions": 4,
    })


def test_context_log_retention_days_reach_the_log_group(configured: Template) -> None:
    configured.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 90})


def test_context_stream_settings_reach_the_mapping(configured: Template) -> None:
    configured.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "ParallelizationFactor": 2, "MaximumBatchingWindowInSeconds": 5,
        "MaximumRetryAttempts": 3,
    })


def test_context_timeout_moves_the_duration_alarm(configured: Template) -> None:
    configured.has_resource_properties("AWS::CloudWatch::Alarm", {
        "AlarmName": "Configured-Aggregator-duration", "Threshold": 96_000,
    })


def test_context_alarm_topic_arn_uses_that_topic(cdk_context: Context) -> None:
    arn = "arn:aws:sns:us-east-1:123456789012:ops"
    template = Template.from_stack(
        AggregatorStack(App(context=cdk_context(alarm_topic_arn=arn)), "OwnTopic")
    )
    template.resource_count_is("AWS::SNS::Topic", 0)
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "AlarmName": "OwnTopic-Aggregator-errors", "AlarmActions": [arn],
    })
    assert template.to_json()["Outputs"]["AlarmTopicArn"]["Value"] == arn


@pytest.mark.parametrize(("key", "value", "message"), [
    ("timeout_seconds", "a minute", r"^timeout_seconds \(context\): 'a minute' is not a whole"),
    ("log_retention_days", 31, r"^log_retention_days \(context\): 31 is not a CloudWatch Logs"),
    ("alarm_topic_arn", "ops-topic", r"^alarm_topic_arn \(context\): 'ops-topic' is not an SNS"),
    ("alarm_email", "ops", r"^alarm_emails: 'ops' is not an e-mail address"),
    ("reserved_concurrency", 0, r"^reserved_concurrency must be a whole number from 1"),
])
def test_bad_construct_context_fails_synth(
    cdk_context: Context, key: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AggregatorStack(App(context=cdk_context(**{key: value})), "Bad")


# --- tags ----------------------------------------------------------------------------


def test_resources_are_tagged_with_the_project(template: Template) -> None:
    for resource_type in ("AWS::DynamoDB::Table", "AWS::Lambda::Function", "AWS::SQS::Queue",
                          "AWS::SNS::Topic"):
        template.has_resource_properties(resource_type, {
            "Tags": Match.array_with([{"Key": "project", "Value": "stream-aggregator"}]),
        })


def test_key_is_not_tagged_so_moto_can_create_it(template: Template) -> None:
    """moto 5.2.1 fails on a tagged AWS::KMS::Key in a template (`make demo` needs it)."""
    template.has_resource_properties("AWS::KMS::Key", {"Tags": Match.absent()})
