"""``AggregatorStack``: the table with its stream, wired to a :class:`StreamAggregator`.

The aggregator's settings come from the CDK context (``cdk.json`` or ``-c key=value``):
any :class:`AggregatorConfig` field under its own name (``snapshot_windows``,
``snapshot_ttl_days``, ``enable_archival``, ...) plus the construct's ``batch_size``.
They go through the same parsing and validation as the Lambda's environment, so a bad
value fails ``cdk synth`` with a message naming the setting.

``table_name`` is optional: unset, CloudFormation names the table (the default, so the
table can be replaced); set, it becomes the table's physical name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aggregator.config import ENV_NAMES, AggregatorConfig
from aws_cdk import CfnOutput, RemovalPolicy, Stack, Tags
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra.stream_aggregator import DEFAULTS, StreamAggregator

# Set by the construct from the resources it is given; not settable from the context.
_RESOURCE_FIELDS = frozenset({"snapshot_table_name", "archive_bucket_name"})
CONFIG_CONTEXT_KEYS = tuple(sorted(set(ENV_NAMES) - _RESOURCE_FIELDS))
"""Context keys that set an :class:`AggregatorConfig` field."""
CONSTRUCT_CONTEXT_KEYS = ("batch_size",)
"""Context keys that set a :class:`StreamAggregator` prop."""


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
    """

    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        """Args:
            scope: the app.
            construct_id: the stack's id (and default stack name).
            **kwargs: passed to :class:`aws_cdk.Stack` (``env``, ``stack_name``, ...).

        Raises:
            aggregator.errors.ConfigError: a context value is not a valid setting.
            ValueError: ``batch_size`` in the context is not a valid batch size.
        """
        super().__init__(scope, construct_id, **kwargs)
        context = {key: self.node.try_get_context(key) for key in ENV_NAMES}
        config = config_from_context(context)
        physical_name = config.table_name if context.get("table_name") is not None else None
        batch_size = _int_setting("batch_size", self.node.try_get_context("batch_size"))

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
            removal_policy=RemovalPolicy.RETAIN,
        )
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
        self.aggregator = StreamAggregator(
            self,
            "Aggregator",
            table=self.table,
            config=config,
            batch_size=DEFAULTS.batch_size if batch_size is None else batch_size,
        )
        Tags.of(self).add("project", "stream-aggregator")

        CfnOutput(self, "TableName", value=self.table.table_name)
        CfnOutput(self, "TableStreamArn", value=self.table.table_stream_arn or "")
        CfnOutput(self, "FunctionName", value=self.aggregator.function.function_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.aggregator.dead_letter_queue.queue_url)
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
        aggregator.errors.ConfigError: a value is not valid for its setting.
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
