"""``StreamAggregator``: a DynamoDB stream, the aggregator Lambda, its DLQ and archive bucket.

Everything the construct builds is a public attribute (the escape hatch). Secure defaults
live in one place, :data:`DEFAULTS`; for the archive bucket they are merged in a fixed
order: what the construct requires, over what the caller passed, over the defaults.

The Lambda's environment is :meth:`AggregatorConfig.to_env` of the config the caller
passes, with the three resource names (``TABLE_NAME``, ``SNAPSHOT_TABLE_NAME``,
``ARCHIVE_BUCKET_NAME``) replaced by the names of the actual resources, so the same
validated object drives synth and the function.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aggregator
from aggregator.config import ENV_NAMES, AggregatorConfig
from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

HANDLER = "aggregator.handler.handler"
RUNTIME = lambda_.Runtime.PYTHON_3_14
"""The newest Python runtime aws-cdk-lib 2.275 knows."""
ARCHITECTURE = lambda_.Architecture.ARM_64
_REQUIRED_STREAM_VIEW = "NEW_AND_OLD_IMAGES"
_S3_ACCESS_LOGS_USE_BUCKET_POLICY = "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"


@dataclass(frozen=True)
class StreamAggregatorDefaults:
    """Every default of :class:`StreamAggregator`, in one place.

    ``max_record_age`` is 6 hours, not the 24 hours a DynamoDB stream keeps records:
    the on-failure destination only receives a batch's *metadata* (shard and sequence
    range), so a failed batch must be re-read from the stream before it expires. Giving
    up after 6 hours leaves at least 18 hours to inspect the DLQ message and replay.
    """

    batch_size: int = 100
    max_batching_window: Duration = Duration.seconds(1)
    retry_attempts: int = 10
    max_record_age: Duration = Duration.hours(6)
    parallelization_factor: int = 1
    memory_size: int = 512
    timeout: Duration = Duration.seconds(60)
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    dlq_retention: Duration = Duration.days(14)
    """The longest SQS allows: time to notice, investigate and replay a failed batch."""


DEFAULTS = StreamAggregatorDefaults()

_SECURE_BUCKET_DEFAULTS: dict[str, Any] = {
    "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
    "enforce_ssl": True,
    "encryption": s3.BucketEncryption.S3_MANAGED,
    "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    "removal_policy": RemovalPolicy.RETAIN,
}
"""Every bucket the construct creates; the archive bucket is also versioned."""


class StreamAggregator(Construct):
    """Consumes a table's stream with the aggregator Lambda.

    Builds the function (with its own log group and a role holding only inline,
    resource-scoped grants), an SQS dead-letter queue as the stream's on-failure
    destination, the event source mapping and, when archival is on and no bucket was
    passed, the archive bucket.

    Attributes:
        function: the aggregator Lambda function.
        event_source_mapping: the mapping from the table's stream to ``function``.
        dead_letter_queue: receives the metadata of batches that ran out of retries.
        archive_bucket: the archive bucket, or None when archival is off.
        access_logs_bucket: where the new archive bucket's server access logs go; None
            when the caller passed the bucket or chose the log destination.
        log_group: the function's log group.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        config: AggregatorConfig,
        archive_bucket: s3.IBucket | None = None,
        archive_bucket_props: s3.BucketProps | None = None,
        batch_size: int = DEFAULTS.batch_size,
        max_batching_window: Duration = DEFAULTS.max_batching_window,
        retry_attempts: int = DEFAULTS.retry_attempts,
        max_record_age: Duration = DEFAULTS.max_record_age,
        parallelization_factor: int = DEFAULTS.parallelization_factor,
        memory_size: int = DEFAULTS.memory_size,
        timeout: Duration = DEFAULTS.timeout,
    ) -> None:
        """Args:
            table: the source table; its stream must be ``NEW_AND_OLD_IMAGES``. Snapshots
                and refills are written back to it.
            config: how records become snapshots and archive objects. Its
                ``table_name``, ``snapshot_table_name`` and ``archive_bucket_name`` are
                replaced in the function's environment by the actual resources' names;
                ``enable_archival`` decides whether there is an archive bucket.
            archive_bucket: an existing bucket for the archive. Default: a new one.
            archive_bucket_props: props for the new archive bucket, merged over the
                secure defaults (block public access, SSL only, S3-managed encryption,
                ACLs disabled, versioned, retained, server access logs to a bucket of
                its own). Not together with ``archive_bucket``.
            batch_size: records per invocation, 1..10000. Default 100.
            max_batching_window: how long to gather a batch, 0..300 s. Default 1 s.
            retry_attempts: retries of a failing batch, -1 (until the record expires)
                ..10000. Default 10.
            max_record_age: records older than this go to the DLQ, 60 s..7 days.
                Default 6 hours (see :class:`StreamAggregatorDefaults`).
            parallelization_factor: concurrent batches per shard, 1..10. Default 1.
            memory_size: function memory in MB, 128..10240. Default 512.
            timeout: function timeout, 1..900 s. Default 60 s.

        Raises:
            ValueError: a prop is out of range, both archive arguments were given, an
                archive argument was given with archival off, or the table has no stream
                (or, for a table defined in this app, a stream without old and new images).
        """
        super().__init__(scope, construct_id)
        # Access logs are delivered under a bucket policy, not an ACL: the log bucket
        # keeps ACLs disabled (BUCKET_OWNER_ENFORCED).
        self.node.set_context(_S3_ACCESS_LOGS_USE_BUCKET_POLICY, True)
        _check_range("batch_size", batch_size, 1, 10_000)
        _check_range("retry_attempts", retry_attempts, -1, 10_000)
        _check_range("parallelization_factor", parallelization_factor, 1, 10)
        _check_range("memory_size", memory_size, 128, 10_240)
        _check_seconds("max_batching_window", max_batching_window, 0, 300)
        _check_seconds("max_record_age", max_record_age, 60, 604_800)
        _check_seconds("timeout", timeout, 1, 900)
        if archive_bucket is not None and archive_bucket_props is not None:
            raise ValueError(
                "archive_bucket and archive_bucket_props are mutually exclusive: pass an "
                "existing bucket or props for a new one, not both"
            )
        if not config.enable_archival and (archive_bucket or archive_bucket_props):
            raise ValueError(
                "archive_bucket/archive_bucket_props given but config.enable_archival is "
                "false: enable archival or drop the bucket argument"
            )
        stream_arn = _require_stream(table)

        self.archive_bucket: s3.IBucket | None = None
        self.access_logs_bucket: s3.IBucket | None = None
        if config.enable_archival:
            self.archive_bucket = archive_bucket or self._new_archive_bucket(
                archive_bucket_props
            )

        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEFAULTS.dlq_retention,
        )
        Validations.of(self.dead_letter_queue).acknowledge(Acknowledgment(
            id="AwsSolutions-SQS3",
            reason="This queue is the dead-letter queue (on-failure destination) of the "
            "stream's event source mapping; it needs no DLQ of its own.",
        ))
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            retention=DEFAULTS.log_retention,
            removal_policy=RemovalPolicy.RETAIN,
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Aggregator Lambda: stream read, snapshot writes, archive puts",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(stage_lambda_asset())),
            memory_size=memory_size,
            timeout=timeout,
            role=role,
            log_group=self.log_group,
            environment=self._environment(config, table),
            description="Aggregates DynamoDB stream records into snapshots and an archive",
        )
        self._grant(table, config)
        self.event_source_mapping = lambda_.EventSourceMapping(
            self,
            "EventSourceMapping",
            target=self.function,
            event_source_arn=stream_arn,
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=batch_size,
            max_batching_window=max_batching_window,
            bisect_batch_on_error=True,
            report_batch_item_failures=True,
            retry_attempts=retry_attempts,
            max_record_age=max_record_age,
            parallelization_factor=parallelization_factor,
            on_failure=event_sources.SqsDlq(self.dead_letter_queue),
        )
        # The mapping is validated against the role's permissions when it is created.
        self.event_source_mapping.node.add_dependency(role)

    def _new_archive_bucket(self, props: s3.BucketProps | None) -> s3.Bucket:
        """Secure defaults, then the caller's props over them (overrides are allowed).

        Unless the caller chose an access-log destination, server access logs go to a
        bucket of their own (as AWS Solutions Constructs do by default).
        """
        kwargs: dict[str, Any] = {**_SECURE_BUCKET_DEFAULTS, "versioned": True}
        user = _struct_kwargs(props)
        if "server_access_logs_bucket" not in user:
            logs_bucket = s3.Bucket(self, "AccessLogsBucket", **_SECURE_BUCKET_DEFAULTS)
            Validations.of(logs_bucket).acknowledge(Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the archive bucket's server access log destination; "
                "logging it into itself would loop.",
            ))
            self.access_logs_bucket = logs_bucket
            kwargs["server_access_logs_bucket"] = logs_bucket
            kwargs["server_access_logs_prefix"] = "archive-bucket/"
        kwargs.update(user)
        return s3.Bucket(self, "ArchiveBucket", **kwargs)

    def _environment(self, config: AggregatorConfig, table: dynamodb.ITable) -> dict[str, str]:
        env = config.to_env()
        env[ENV_NAMES["table_name"]] = table.table_name
        env[ENV_NAMES["snapshot_table_name"]] = table.table_name
        env[ENV_NAMES["archive_bucket_name"]] = (
            self.archive_bucket.bucket_name if self.archive_bucket else ""
        )
        return env

    def _grant(self, table: dynamodb.ITable, config: AggregatorConfig) -> None:
        """Least privilege, inline only.

        ``grant_stream_read`` includes ``dynamodb:ListStreams`` on ``*``: that action has
        no resource-level permissions, and Lambda checks for it when the mapping is
        created. Every other DynamoDB action is scoped to this table and its stream.
        """
        role = self.function.role
        assert role is not None  # the construct always passes its own role
        table.grant_stream_read(self.function)
        self._acknowledge(role, "*", "dynamodb:ListStreams has no resource-level "
                          "permissions; Lambda checks for it when the mapping is created.")
        # The table only, not its indexes: items are read and written by primary key.
        iam.Grant.add_to_principal(
            grantee=self.function,
            actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
            resource_arns=[table.table_arn],
        )
        if table.encryption_key is not None:
            table.encryption_key.grant_encrypt_decrypt(self.function)
        self.log_group.grant_write(self.function)
        bucket = self.archive_bucket
        if bucket is not None:
            objects = bucket.arn_for_objects(f"{config.archive_prefix}*")
            iam.Grant.add_to_principal(
                grantee=self.function, actions=["s3:PutObject"], resource_arns=[objects]
            )
            self._acknowledge(role, objects, "Archive object keys are derived from the "
                              "records; puts are limited to the archive prefix.")
            if bucket.encryption_key is not None:
                bucket.encryption_key.grant_encrypt(self.function)

    @staticmethod
    def _acknowledge(role: iam.IRole, resource: str, reason: str) -> None:
        """Acknowledge cdk-nag's IAM5 finding for one wildcard resource of ``role``."""
        rendered = _nag_resource(Stack.of(role).resolve(resource))
        if rendered is not None:
            Validations.of(role).acknowledge(Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{rendered}]", reason=reason
            ))


def _require_stream(table: dynamodb.ITable) -> str:
    stream_arn = table.table_stream_arn
    if not stream_arn:
        raise ValueError(
            f"table has no stream: enable stream=NEW_AND_OLD_IMAGES on {table.node.path}"
        )
    # Only a table defined in this app shows its view type; an imported one is trusted.
    spec = getattr(table.node.default_child, "stream_specification", None)
    view = getattr(spec, "stream_view_type", None)
    if isinstance(view, str) and view != _REQUIRED_STREAM_VIEW:
        raise ValueError(
            f"table stream view type is {view}: enable stream=NEW_AND_OLD_IMAGES "
            "(snapshots need new images, the archive needs old ones)"
        )
    return stream_arn


def _nag_resource(resolved: object) -> str | None:
    """A resolved ARN as cdk-nag writes it in a finding id (``<Logical.Arn>/audit/*``).

    None for shapes this does not know; the finding then stays visible, unacknowledged.
    """
    if isinstance(resolved, str):
        return resolved
    if not isinstance(resolved, dict) or len(resolved) != 1:
        return None
    ((fn, arg),) = resolved.items()
    if fn == "Ref" and isinstance(arg, str):
        return f"<{arg}>"
    if fn == "Fn::GetAtt" and isinstance(arg, list):
        return "<" + ".".join(str(a) for a in arg) + ">"
    if fn == "Fn::Join" and isinstance(arg, list) and arg[0] == "":
        parts = [_nag_resource(part) for part in arg[1]]
        return None if None in parts else "".join(p for p in parts if p is not None)
    return None


def _struct_kwargs(struct: object | None) -> dict[str, Any]:
    """The properties a jsii struct was given, as keyword arguments."""
    if struct is None:
        return {}
    names = [p for p in inspect.signature(type(struct).__init__).parameters if p != "self"]
    values = {name: getattr(struct, name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")


def _check_seconds(name: str, value: Duration, low: int, high: int) -> None:
    if value.is_unresolved():
        return
    seconds = value.to_seconds()
    if not low <= seconds <= high:
        raise ValueError(f"{name} must be from {low} to {high} seconds, got {seconds}")


def aggregator_package_dir() -> Path:
    """Where the installed ``aggregator`` package lives (works for namespace packages too)."""
    if aggregator.__file__:
        return Path(aggregator.__file__).parent
    for entry in aggregator.__path__:
        path = Path(entry)
        if path.is_dir():
            return path
    raise RuntimeError("cannot locate the aggregator package on disk")


def stage_lambda_asset(package_dir: Path | None = None) -> Path:
    """A directory holding ``aggregator/*.py`` only, named by a hash of their contents.

    The asset is found from the installed package, not the working directory, so synth
    works from anywhere. Only ``.py`` files are copied (no ``__pycache__``, no boto3:
    the runtime provides it); the same sources always give the same directory and so
    the same asset hash.
    """
    source = package_dir or aggregator_package_dir()
    files = sorted(
        path.relative_to(source)
        for path in source.rglob("*.py")
        if "__pycache__" not in path.relative_to(source).parts
    )
    digest = hashlib.sha256()
    for relative in files:
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update((source / relative).read_bytes() + b"\0")
    root = Path(tempfile.gettempdir()) / "stream-aggregator-assets"
    staged = root / f"aggregator-{digest.hexdigest()[:20]}"
    if staged.is_dir():
        return staged
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    for relative in files:
        target = building / "aggregator" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, target)
    try:
        os.rename(building, staged)
    except OSError:  # another process staged the same sources first
        shutil.rmtree(building, ignore_errors=True)
    return staged
