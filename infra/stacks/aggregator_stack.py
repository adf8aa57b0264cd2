"""``AggregatorStack``: the table with its stream, wired to a :class:`StreamAggregator`.

The aggregator's settings come from the CDK context (``cdk.json`` or ``-c key=value``):
any :class:`AggregatorConfig` field under its own name (``snapshot_windows``,
``snapshot_ttl_days``, ``enable_archival``, ...) plus the construct settings of
:data:`CONSTRUCT_CONTEXT_KEYS` (``batch_size``, ``alarm_email``, ...). They go through
the same parsing and validation as the Lambda's environment, so a bad value fails
``cdk synth`` with a message naming the setting.

``table_name`` is optional: unset, CloudFormation names the table (the default, so the
table can be replaced); set, it becomes the table's physical name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from ..pipeline_settings import USAGE_ENV_NAMES as ENV_NAMES
from ..pipeline_settings import AggregatorConfig
from ..stream_aggregator import StreamAggregator
from ..suppressions import skip_checkov

# Set by the construct from the resources it is given; not settable from the context.
_RESOURCE_FIELDS = frozenset({"snapshot_table_name", "archive_bucket_name"})
CONFIG_CONTEXT_KEYS = tuple(sorted(set(ENV_NAMES) - _RESOURCE_FIELDS))
"""Context keys that set an :class:`AggregatorConfig` field."""
_INT_SETTINGS = {
    # context key: StreamAggregator prop
    "batch_size": "batch_size",
    "retry_attempts": "retry_attempts",
    "parallelization_factor": "parallelization_factor",
    "memory_size": "memory_size",
    "reserved_concurrency": "reserved_concurrency",
}
_SECONDS_SETTINGS = {
    "max_batching_window_seconds": "max_batching_window",
    "timeout_seconds": "timeout",
}
CONSTRUCT_CONTEXT_KEYS = (
    *_INT_SETTINGS, *_SECONDS_SETTINGS, "log_retention_days", "tracing", "alarm_email",
    "alarm_topic_arn",
)
"""Context keys that set a :class:`StreamAggregator` prop (see :func:`construct_props`)."""

_RETENTION_DAYS = {
    1: logs.RetentionDays.ONE_DAY, 3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS, 7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS, 30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS, 90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS, 150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS, 365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS, 545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS, 1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS, 2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS, 2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS, 3653: logs.RetentionDays.TEN_YEARS,
}
"""The retention periods CloudWatch Logs accepts, in days."""


GLOBAL_INDEXES = (
    ("GSI1", dynamodb.ProjectionType.ALL),
    ("GSI2", dynamodb.ProjectionType.ALL),
    ("GSI3", dynamodb.ProjectionType.KEYS_ONLY),
    ("GSI4", dynamodb.ProjectionType.KEYS_ONLY),
)
"""zae-limiter's global indexes (``<name>PK``/``<name>SK``); snapshots are queried on GSI2."""
LOCAL_INDEXES = (
    ("LSI1", dynamodb.ProjectionType.ALL),
    ("LSI2", dynamodb.ProjectionType.KEYS_ONLY),
    ("LSI3", dynamodb.ProjectionType.ALL),
    ("LSI4", dynamodb.ProjectionType.KEYS_ONLY),
    ("LSI5", dynamodb.ProjectionType.ALL),
)
"""zae-limiter's local indexes (``PK``/``<name>SK``); these exist only if made with the table."""


class AggregatorStack(Stack):
    """A DynamoDB table (zae-limiter's schema, streamed) and its aggregator.

    The table is the one zae-limiter 0.17 creates for itself (``schema.get_table_definition``),
    all indexes included, so zae-limiter's client works on it; a test pins the match.
    It is on-demand, encrypted, with point-in-time recovery, deletion protection and
    TTL on ``ttl``, streams ``NEW_AND_OLD_IMAGES`` and is retained when the stack goes.
    """

    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        """Args:
            scope: the app.
            construct_id: the stack's id (and default stack name).
            **kwargs: passed to :class:`aws_cdk.Stack` (``env``, ``stack_name``, ...).

        Raises:
            streamagg_engine.errors.ConfigError: a context value is not a valid setting.
            ValueError: a construct setting in the context is not valid (the message
                names it).
        """
        super().__init__(scope, construct_id, **kwargs)
        context = {key: self.node.try_get_context(key) for key in ENV_NAMES}
        config = config_from_context(context)
        physical_name = config.table_name if context.get("table_name") is not None else None
        props = construct_props(
            {key: self.node.try_get_context(key) for key in CONSTRUCT_CONTEXT_KEYS}
        )
        topic_arn = props.pop("alarm_topic_arn", None)

        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=physical_name,
            partition_key=_string("PK"),
            sort_key=_string("SK"),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            time_to_live_attribute="ttl",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        skip_checkov(self.table, "CKV_AWS_119", "Encrypted with the AWS-managed key, as "
                     "zae-limiter creates its table: a customer-managed key would need a "
                     "key grant for every client of the rate limiter.")
        for index, projection in GLOBAL_INDEXES:
            self.table.add_global_secondary_index(
                index_name=index,
                partition_key=_string(f"{index}PK"),
                sort_key=_string(f"{index}SK"),
                projection_type=projection,
            )
        for index, projection in LOCAL_INDEXES:
            self.table.add_local_secondary_index(
                index_name=index, sort_key=_string(f"{index}SK"), projection_type=projection
            )
        if topic_arn is not None:
            props["alarm_topic"] = sns.Topic.from_topic_arn(self, "AlarmTopic", topic_arn)
        self.aggregator = StreamAggregator(
            self, "Aggregator", table=self.table, config=config, **props
        )
        # Not on the KMS key: moto 5.2.1 cannot create a tagged AWS::KMS::Key from a
        # template (its tagger expects TagKey/TagValue), and `make demo` deploys into moto.
        Tags.of(self).add(
            "project", "stream-aggregator", exclude_resource_types=["AWS::KMS::Key"]
        )

        CfnOutput(self, "TableName", value=self.table.table_name)
        CfnOutput(self, "TableStreamArn", value=self.table.table_stream_arn or "")
        CfnOutput(self, "FunctionName", value=self.aggregator.function.function_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.aggregator.dead_letter_queue.queue_url)
        CfnOutput(self, "AlarmTopicArn", value=self.aggregator.alarm_topic.topic_arn)
        CfnOutput(self, "DashboardName", value=self.aggregator.dashboard.dashboard_name)
        if self.aggregator.archive_bucket is not None:
            CfnOutput(
                self, "ArchiveBucketName", value=self.aggregator.archive_bucket.bucket_name
            )


def config_from_context(context: Mapping[str, object]) -> AggregatorConfig:
    """An :class:`AggregatorConfig` from context values keyed by field name.

    Values may be JSON (from ``cdk.json``: lists, booleans, numbers) or strings (from
    ``-c key=value``); both are turned into the environment-variable text that
    :meth:`AggregatorConfig.from_env` parses, so errors name the setting the same way.
    Unset (None) keys take the config's defaults; keys that are not aggregator settings
    (``env_name``, ``batch_size``) are left to their owners.

    Raises:
        streamagg_engine.errors.ConfigError: a value is not valid for its setting.
        ValueError: the context sets a resource name, which the construct owns.
    """
    for name in sorted(_RESOURCE_FIELDS & set(context)):
        if context[name] is not None:
            raise ValueError(
                f"{name}: not a configurable aggregator setting; the construct sets it "
                "from the resources it is given"
            )
    env = {
        ENV_NAMES[name]: _as_env_text(value)
        for name, value in context.items()
        if name in CONFIG_CONTEXT_KEYS and value is not None
    }
    return AggregatorConfig.from_env(env)


def construct_props(context: Mapping[str, object]) -> dict[str, Any]:
    """:class:`StreamAggregator` keyword arguments from context values (unset: defaults).

    ``alarm_email`` is one address or several separated by commas (or a JSON list);
    ``tracing`` is ``true`` or ``false`` (a JSON boolean or its text);
    ``alarm_topic_arn`` is returned as it is, for the stack to import the topic.

    Raises:
        ValueError: a value is not valid for its setting (the message names it).
    """
    props: dict[str, Any] = {}
    for key, prop in _INT_SETTINGS.items():
        value = _int_setting(key, context.get(key))
        if value is not None:
            props[prop] = value
    for key, prop in _SECONDS_SETTINGS.items():
        value = _int_setting(key, context.get(key))
        if value is not None:
            props[prop] = Duration.seconds(value)
    days = _int_setting("log_retention_days", context.get("log_retention_days"))
    if days is not None:
        if days not in _RETENTION_DAYS:
            raise ValueError(
                f"log_retention_days (context): {days} is not a CloudWatch Logs retention; "
                f"choose from {', '.join(str(d) for d in _RETENTION_DAYS)}"
            )
        props["log_retention"] = _RETENTION_DAYS[days]
    tracing = context.get("tracing")
    if tracing is not None:
        if str(tracing).strip().lower() not in ("true", "false"):
            raise ValueError(f"tracing (context): {tracing!r} is not true or false")
        props["tracing"] = str(tracing).strip().lower() == "true"
    emails = context.get("alarm_email")
    if emails is not None and emails != "":
        items = emails if isinstance(emails, list | tuple) else str(emails).split(",")
        props["alarm_emails"] = [str(item).strip() for item in items if str(item).strip()]
    topic_arn = context.get("alarm_topic_arn")
    if topic_arn is not None and topic_arn != "":
        if not str(topic_arn).startswith("arn:") or ":sns:" not in str(topic_arn):
            raise ValueError(f"alarm_topic_arn (context): {topic_arn!r} is not an SNS topic ARN")
        props["alarm_topic_arn"] = str(topic_arn)
    return props


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


def _as_env_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _int_setting(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{name} (context): {value!r} is not a whole number")
