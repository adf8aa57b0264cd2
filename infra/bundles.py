"""``ObjectBundler``: S3 object-created events -> SQS -> the bundler Lambda -> bundles.

The second configuration of the engine (seed 001). Like ``StreamAggregator`` it is an
:class:`infra.pipeline.PipelineConstruct` (function, log group, role, alarm topic,
alarms, dashboard, prop checks, checkov reasons), makes its buckets with
:mod:`infra.buckets`, and builds:

* the **ingest bucket** (new, with :data:`infra.buckets.SECURE_BUCKET_DEFAULTS`, or an
  existing ``IBucket``) notifying the queue of every object created (optionally only
  under ``notification_filters``);
* the **queue**, encrypted with the construct's KMS key (S3 may use the key to send:
  SQS-managed SSE would need no key policy, but a customer key keeps the data key under
  the account's control and the queue, DLQ and alarm topic under one rotated key), SSL
  only, with its own **DLQ** through a redrive policy (``max_receive_count``) and a
  visibility timeout of at least six times the function timeout, as Lambda advises;
* the **function** (``streamagg_bundles.handler.handler``) fed by an ``SqsEventSource``
  reporting batch item failures, with inline, resource-scoped grants only;
* the **idempotency table** (on demand, TTL on ``expires_at``, point-in-time recovery,
  encrypted with the construct's key, deletion protection, retained);
* the **distribution bucket** (versioned) replicated by S3 to the **archive bucket**
  (versioned; new or existing) through a least-privilege replication role, with
  replication metrics on, so ``ReplicationLatency`` can be alarmed on;
* the **alarms** (:data:`ALARM_KEYS`) and a **dashboard** of the bundler's counts.

Settings the Lambda reads are validated by :class:`streamagg_bundles.config.BundlerConfig`
at synth, so a bad value fails ``cdk synth`` with the variable's name
(``MAX_BUNDLE_INPUT_MB``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Unpack

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Size, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3_notifications
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .alarms import (
    AlarmSpec,
    PipelineMetrics,
    at_least,
    check_counts,
    check_duration_percents,
    duration_specs,
    greater_than,
    pipeline_metrics,
)
from .buckets import (
    BucketDefaults,
    access_logs_bucket,
    noncurrent_lifecycle_rules,
    secure_bucket,
)
from .log_queries import BUNDLE_QUERIES, create_query_definitions
from .parts import (
    DLQ_RETENTION,
    acknowledge_wildcard,
    check_range,
    check_seconds,
    dead_letter_queue,
    encryption_key,
)
from .pipeline import PipelineConstruct
from .pipeline_settings import BUNDLER_COUNTS as COUNTS
from .pipeline_settings import BUNDLER_ENV_NAMES as ENV_NAMES
from .pipeline_settings import BUNDLER_NAMESPACE as NAMESPACE
from .pipeline_settings import BundlerConfig
from .props import QueuePipelineProps, QueueSettings, resolve
from .suppressions import skip_checkov, skip_function_checks

HANDLER = "streamagg_bundles.handler.handler"
REPLICATION_RULE_ID = "archive"
ALARM_KEYS = ("queue_age", "dlq_depth", "replication_latency", "errors", "duration",
              "duration_warning", "throttles", "skipped_messages", "failed_writes",
              "oversized_objects")
"""The keys of :attr:`ObjectBundler.alarms` (``duration_warning`` left out when off)."""
_SYNTH_NAME = "validated-at-synth"
"""Stands in for the resource names while the settings are validated."""
_LEASE_MARGIN_SECONDS = 60
_NOTIFICATIONS_HANDLER = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
_NOTIFICATIONS_HANDLER_SKIPS = {
    "CKV_AWS_115": "aws-cdk-lib's bucket-notifications handler runs only during "
    "CloudFormation deployments; reserving concurrency for it would waste the account's.",
    "CKV_AWS_116": "aws-cdk-lib's bucket-notifications handler is invoked synchronously by "
    "CloudFormation, which reports its failures; a DLQ would never receive anything.",
    "CKV_AWS_117": "aws-cdk-lib's bucket-notifications handler only calls the S3 API over "
    "TLS during deployments; a VPC would add endpoints and no isolation.",
    "CKV_AWS_173": "aws-cdk-lib's bucket-notifications handler has no environment "
    "variables holding secrets; CDK owns its definition.",
}
_EPHEMERAL_HEADROOM_MB = 64
_FORMATS = {"tar": "gzip tarballs", "gzip": "plain gzip bundles"}
"""The function's description of each ``bundle_format``."""


@dataclass(frozen=True)
class BundlerAlarmThresholds:
    """When each alarm fires. ``errors`` counts failed invocations, so its default (the
    first one) already opens the operations guide's error-rate warning band; the duration
    alarms are the guide's 80 % critical and 50-80 % warning band."""

    queue_age: Duration = Duration.minutes(15)
    """The oldest message waited longer than this (3 minutes running)."""
    replication_latency: Duration = Duration.minutes(15)
    """Bundles took longer than this to reach the archive bucket."""
    dlq_depth: int = 1
    errors: int = 1
    duration_percent_of_timeout: float = 80.0
    """``duration`` fires when an invocation takes longer than this share of the timeout."""
    duration_warning_percent_of_timeout: float | None = 50.0
    """``duration_warning`` fires above this share, below the critical one; None: off."""
    throttles: int = 1
    skipped_messages: int = 1
    failed_writes: int = 1
    oversized_objects: int = 1

    def __post_init__(self) -> None:
        check_duration_percents(self.duration_percent_of_timeout,
                                self.duration_warning_percent_of_timeout)
        check_counts(self, ("dlq_depth", "errors", "throttles", "skipped_messages",
                            "failed_writes", "oversized_objects"))


@dataclass(frozen=True)
class ObjectBundlerDefaults(QueueSettings, BucketDefaults):
    """Every default of :class:`ObjectBundler`, in one place: the function's and the
    queue mapping's (:class:`infra.props.QueueSettings`, with more time and memory to
    stream objects), the queue's and the buckets' (:class:`infra.buckets.BucketDefaults`)."""

    timeout: Duration = Duration.minutes(5)
    memory_size: int = 1024
    reserved_concurrency: int | None = 10
    """A queue, unlike a stream, lets Lambda scale out to the account's whole concurrency
    when uploads burst, and each invocation builds up to ``max_workers`` bundles at once
    from S3 reads. Ten caps what one bundler takes from the account and from the buckets'
    request rates, while leaving room above the five batches Lambda's SQS pollers start
    with; the event source's ``max_concurrency`` follows it, so the queue is never
    throttled back into itself (which would spend receives toward the DLQ)."""
    max_batching_window: Duration = Duration.seconds(30)
    """Gather up to this long: fewer, larger bundles."""
    max_receive_count: int = 5
    queue_retention: Duration = Duration.days(4)


DEFAULTS = ObjectBundlerDefaults()


class ObjectBundler(PipelineConstruct):
    """Bundles the objects created in an ingest bucket, once each, into a distribution
    bucket that S3 replicates to an archive bucket.

    Attributes:
        ingest_bucket, queue, dead_letter_queue, function, event_source,
        idempotency_table, distribution_bucket, archive_bucket, replication_role,
        access_logs_bucket, log_group, encryption_key, alarm_topic, alarms (by
        :data:`ALARM_KEYS`), dashboard, config (the validated settings, resource names
        as placeholders).
    """

    LABEL = "Object bundler"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ingest_bucket: s3.IBucket | None = None,
        ingest_bucket_props: s3.BucketProps | None = None,
        notification_filters: Sequence[s3.NotificationKeyFilter] = (),
        archive_bucket: s3.IBucket | None = None,
        profile: str = "default",
        bundle_format: str = "",
        partition_by: str = "",
        service_name: str = "",
        bundle_prefix: str = "",
        max_bundle_input_mb: int = 100,
        max_bundle_objects: int = 99,
        idempotency_ttl_days: int = 30,
        spool_memory_mb: int = 8,
        max_workers: int = 4,
        log_level: str = "INFO",
        visibility_timeout: Duration | None = None,
        max_receive_count: int = DEFAULTS.max_receive_count,
        queue_retention: Duration = DEFAULTS.queue_retention,
        alarm_thresholds: BundlerAlarmThresholds | None = None,
        **props: Unpack[QueuePipelineProps],
    ) -> None:
        """Args:
            ingest_bucket: an existing bucket whose new objects are bundled. Default: a
                new one (secure defaults, ``ingest_bucket_props`` merged over them).
            notification_filters: only keys matching these notify the queue.
            archive_bucket: an existing, *versioned* replication destination. Default: a
                new versioned bucket.
            profile .. log_level: the bundler's settings (see
                :class:`streamagg_bundles.config.BundlerConfig`; the Lambda reads them as
                ``PROFILE``, ``BUNDLE_PREFIX``, ``MAX_BUNDLE_INPUT_MB`` ...).
                ``profile="seed-001"`` writes seed 001's format: one plain gzip of the
                objects' bytes under ``YYYY/MM/DD/HH/bundle-<id>.gz``, partitioned by
                write time (``docs/bundles.md``, "Seed 001 profile");
                ``bundle_format``/``partition_by`` left empty take the profile's.
            visibility_timeout: of the queue; at least 6 x ``timeout``. Default 6 x timeout.
            max_receive_count: receives before a message moves to the DLQ, 1..1000.
            queue_retention: how long the queue keeps a message, 60 s..14 days. Default 4
                days. ``idempotency_ttl_days`` must cover it plus the DLQ's 14 days, so a
                redriven message still finds its claim.
            alarm_thresholds: when the alarms fire.
            **props: the function, queue mapping and alarm props
                (:class:`infra.props.QueuePipelineProps`), over :data:`DEFAULTS`: a
                timeout of 30..900 s (5 minutes), 1024 MB, a batching window of 30 s
                (``batch_size`` above 10 needs one), ``reserved_concurrency`` 10 (2 or
                more; None lifts the cap) and ``max_concurrency`` equal to it (at most
                it). A stream's ``retry_attempts``, ``max_record_age``,
                ``parallelization_factor``, ``starting_position`` and ``filters`` do not
                exist for a queue: S3's notifications are filtered by
                ``notification_filters``, receives by ``max_receive_count``.

        Raises:
            streamagg_engine.errors.ConfigError: a bundler setting is invalid (names it).
            TypeError: a keyword is not one of the construct's props.
            ValueError: a prop is invalid or two exclusive props were both given.
        """
        super().__init__(scope, construct_id)
        if ingest_bucket is not None and ingest_bucket_props is not None:
            raise ValueError("ingest_bucket and ingest_bucket_props are mutually exclusive: "
                             "pass an existing bucket or props for a new one, not both")
        settings = resolve(type(self).__name__, DEFAULTS, props, QueuePipelineProps)
        _check_props(settings, max_receive_count=max_receive_count,
                     queue_retention=queue_retention)
        timeout = settings.timeout
        visibility = visibility_timeout or Duration.seconds(6 * timeout.to_seconds())
        check_seconds("visibility_timeout", visibility, 6 * int(timeout.to_seconds()), 43_200)
        monitoring = self._monitoring(settings)
        thresholds = alarm_thresholds or BundlerAlarmThresholds()
        self.config = BundlerConfig(
            distribution_bucket_name=_SYNTH_NAME, idempotency_table_name=_SYNTH_NAME,
            profile=profile, bundle_format=bundle_format, partition_by=partition_by,
            service_name=service_name, bundle_prefix=bundle_prefix,
            max_bundle_input_mb=max_bundle_input_mb,
            max_bundle_objects=max_bundle_objects, idempotency_ttl_days=idempotency_ttl_days,
            claim_lease_seconds=int(timeout.to_seconds()) + _LEASE_MARGIN_SECONDS,
            spool_memory_mb=spool_memory_mb, max_workers=max_workers, log_level=log_level)
        message_life_days = math.ceil(
            (queue_retention.to_seconds() + DLQ_RETENTION.to_seconds()) / 86_400)
        if idempotency_ttl_days < message_life_days:
            raise ValueError(
                f"idempotency_ttl_days (IDEMPOTENCY_TTL_DAYS) is {idempotency_ttl_days}, "
                f"shorter than a message can live (queue_retention + 14 days of DLQ = "
                f"{message_life_days} days): a redriven duplicate would be bundled again")
        ephemeral_mb = max_workers * max_bundle_input_mb + _EPHEMERAL_HEADROOM_MB
        if ephemeral_mb > 10_240:
            raise ValueError(
                f"max_workers x max_bundle_input_mb (MAX_WORKERS x MAX_BUNDLE_INPUT_MB) needs "
                f"{ephemeral_mb} MB of /tmp; Lambda offers at most 10240")

        self.encryption_key = encryption_key(
            self, "Object bundler: queues, idempotency table and alarm topic")
        self.access_logs_bucket = access_logs_bucket(self, whose="the construct's buckets'")
        self.ingest_bucket = ingest_bucket or self._bucket("IngestBucket", ingest_bucket_props)
        self.archive_bucket = archive_bucket or self._bucket("ArchiveBucket", None)
        self.replication_role = self._replication_role()
        self.distribution_bucket = self._distribution_bucket()
        self._grant_replication()

        self.dead_letter_queue = dead_letter_queue(
            self, self.encryption_key,
            purpose="This queue is the bundle queue's dead-letter queue (redrive "
            "target); it needs no DLQ of its own.")
        self.queue = sqs.Queue(
            self, "Queue", encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.encryption_key, enforce_ssl=True,
            visibility_timeout=visibility, retention_period=queue_retention,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue,
                                                  max_receive_count=max_receive_count))
        self.ingest_bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED, s3_notifications.SqsDestination(self.queue),
            *notification_filters)
        self._review_notifications_handler()

        self.idempotency_table = self._idempotency_table()

        env = self.config.to_env()
        env[ENV_NAMES["distribution_bucket_name"]] = self.distribution_bucket.bucket_name
        env[ENV_NAMES["idempotency_table_name"]] = self.idempotency_table.table_name
        role = self._add_function(
            settings, handler=HANDLER, environment=env,
            description="Bundles S3 objects announced on SQS into "
            f"{_FORMATS[self.config.bundle_format]}, once each",
            role_description="Object bundler Lambda: source reads, bundle puts, claims",
            ephemeral_storage_size=Size.mebibytes(max(512, ephemeral_mb)))
        self._grant(role, bundle_prefix)
        self.event_source = event_sources.SqsEventSource(
            self.queue, batch_size=settings.batch_size,
            max_batching_window=settings.max_batching_window,
            max_concurrency=_max_concurrency(settings), report_batch_item_failures=True)
        self.function.add_event_source(self.event_source)
        skip_function_checks(
            self.function, self.log_group, invoked_by="an SQS event source mapping",
            on_failure="failed messages go to the queue's own dead-letter queue through its "
            "redrive policy", calls="AWS APIs (S3, DynamoDB)",
            concurrency=None if settings.reserved_concurrency is not None else
            "Reserved concurrency was lifted on purpose (reserved_concurrency=None); the "
            "event source's max_concurrency bounds invocations when set.")

        metrics = pipeline_metrics(self.function, self.dead_letter_queue,
                                   namespace=NAMESPACE, counts=COUNTS,
                                   queue=self.queue)
        self._monitor(monitoring, self._alarm_specs(metrics, thresholds, settings.timeout),
                      metrics)
        self.query_definitions = create_query_definitions(
            self, log_group=self.log_group, name_prefix=monitoring.name_prefix,
            queries=BUNDLE_QUERIES)

    def _idempotency_table(self) -> dynamodb.Table:
        """Claims and bundle records: losing it would lose deduplication, so it is kept."""
        return dynamodb.Table(
            self, "IdempotencyTable",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expires_at",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.encryption_key,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _bucket(self, construct_id: str, props: s3.BucketProps | None) -> s3.Bucket:
        """Secure defaults, then the caller's props (overrides are allowed)."""
        return secure_bucket(self, construct_id, props=props,
                             lifecycle_rules=noncurrent_lifecycle_rules(),
                             access_logs=self.access_logs_bucket,
                             access_logs_prefix=f"{construct_id}/")

    def _replication_role(self) -> iam.Role:
        """Only what S3 replication of new objects needs (no deletes are replicated)."""
        return iam.Role(self, "ReplicationRole",
                        assumed_by=iam.ServicePrincipal("s3.amazonaws.com"),
                        description="S3 replication: distribution bucket to archive bucket")

    def _distribution_bucket(self) -> s3.Bucket:
        return secure_bucket(
            self, "DistributionBucket", props=None,
            lifecycle_rules=noncurrent_lifecycle_rules(), access_logs=self.access_logs_bucket,
            access_logs_prefix="DistributionBucket/", versioned=True,
            replication_role=self.replication_role,
            replication_rules=[s3.ReplicationRule(
                id=REPLICATION_RULE_ID, destination=self.archive_bucket, priority=0,
                delete_marker_replication=False,
                metrics=s3.ReplicationTimeValue.FIFTEEN_MINUTES)],
        )

    def _grant_replication(self) -> None:
        """What S3 needs to replicate new object versions, on these two buckets only.

        Source bucket: read its replication configuration and list it. Source objects:
        read a version, its ACL and its tags for replication. Destination objects:
        replicate objects, delete markers and tags. A key-encrypted archive bucket also
        lets the role encrypt with its key.
        """
        role, source, target = self.replication_role, self.distribution_bucket, \
            self.archive_bucket
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetReplicationConfiguration", "s3:ListBucket"],
            resources=[source.bucket_arn]))
        source_objects = source.arn_for_objects("*")
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl",
                     "s3:GetObjectVersionTagging"],
            resources=[source_objects]))
        target_objects = target.arn_for_objects("*")
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
            resources=[target_objects]))
        for resource in (source_objects, target_objects):
            acknowledge_wildcard(role, resource, "S3 replication copies every new object "
                                 "version of the distribution bucket into the archive bucket.")
        if target.encryption_key is not None:
            target.encryption_key.grant_encrypt(role)

    def _grant(self, role: iam.Role, bundle_prefix: str) -> None:
        """Least privilege, inline only, each grant scoped to its resource.

        ``s3:ListBucket`` on the distribution bucket makes HeadObject answer 404 (not 403)
        for a bundle that does not exist yet, which the takeover of an abandoned bundle
        relies on. DynamoDB: GetItem, PutItem (claims, in a transaction) and UpdateItem
        (takeover, completion) on the table only.
        """
        sources = self.ingest_bucket.arn_for_objects("*")
        iam.Grant.add_to_principal(grantee=self.function,
                                   actions=["s3:GetObject", "s3:GetObjectVersion"],
                                   resource_arns=[sources])
        acknowledge_wildcard(role, sources, "Source object keys are whatever producers "
                             "upload; the function reads only objects of the ingest bucket.")
        if self.ingest_bucket.encryption_key is not None:
            self.ingest_bucket.encryption_key.grant_decrypt(self.function)
        bundles = self.distribution_bucket.arn_for_objects(f"{bundle_prefix}*")
        iam.Grant.add_to_principal(grantee=self.function,
                                   actions=["s3:GetObject", "s3:PutObject"],
                                   resource_arns=[bundles])
        acknowledge_wildcard(role, bundles, "Bundle keys are derived from their members; "
                             "reads and puts are limited to the bundle prefix.")
        iam.Grant.add_to_principal(grantee=self.function, actions=["s3:ListBucket"],
                                   resource_arns=[self.distribution_bucket.bucket_arn])
        iam.Grant.add_to_principal(
            grantee=self.function,
            actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            resource_arns=[self.idempotency_table.table_arn])
        self.encryption_key.grant(self.function, "kms:Decrypt", "kms:Encrypt",
                                  "kms:GenerateDataKey")
        self.log_group.grant_write(self.function)

    def _alarm_specs(self, metrics: PipelineMetrics, thresholds: BundlerAlarmThresholds,
                     timeout: Duration) -> list[AlarmSpec]:
        replication = cloudwatch.Metric(
            namespace="AWS/S3", metric_name="ReplicationLatency", statistic="Maximum",
            period=Duration.minutes(5), dimensions_map={
                "SourceBucket": self.distribution_bucket.bucket_name,
                "DestinationBucket": self.archive_bucket.bucket_name,
                "RuleId": REPLICATION_RULE_ID})
        counts = metrics.counts
        return [
            greater_than("queue_age", metrics.lag, thresholds.queue_age.to_seconds(), 3,
                         "The oldest message waited too long: the bundler is failing or "
                         "behind."),
            at_least("dlq_depth", metrics.dlq_depth, thresholds.dlq_depth,
                     "Messages ran out of receives; redrive them after the fix "
                     "(aws sqs start-message-move-task)."),
            greater_than("replication_latency", replication,
                         thresholds.replication_latency.to_seconds(), 1,
                         "Bundles are slow to reach the archive bucket (S3 replication)."),
            at_least("errors", metrics.errors, thresholds.errors,
                     "Invocations failed (timeouts, crashes, configuration): whole "
                     "batches are redelivered."),
            *duration_specs(metrics, timeout, thresholds.duration_percent_of_timeout,
                            thresholds.duration_warning_percent_of_timeout),
            at_least("throttles", metrics.throttles, thresholds.throttles,
                     "Invocations were throttled."),
            at_least("skipped_messages", counts["MessagesSkipped"], thresholds.skipped_messages,
                     "Malformed messages were logged with their id and dropped "
                     "(MessagesSkipped)."),
            at_least("failed_writes", counts["FailedWrites"], thresholds.failed_writes,
                     "Bundle claims, reads or puts failed after retries (FailedWrites); "
                     "their messages are retried."),
            at_least("oversized_objects", counts["ObjectsOversized"],
                     thresholds.oversized_objects,
                     "An object exceeds MAX_BUNDLE_INPUT_MB; its message goes to the DLQ."),
        ]

    def _review_notifications_handler(self) -> None:
        """Findings on aws-cdk-lib's bucket-notifications handler, with their reasons.

        ``add_event_notification`` configures the notification through a custom resource
        backed by a stack-wide Lambda that aws-cdk-lib owns (one per stack, whatever the
        number of buckets). Its role and function are not ours to change.
        """
        handler = Stack.of(self).node.try_find_child(_NOTIFICATIONS_HANDLER)
        if handler is None:
            return
        role = handler.node.try_find_child("Role")
        if role is not None:
            Validations.of(role).acknowledge(Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                "service-role/AWSLambdaBasicExecutionRole]",
                reason="aws-cdk-lib's bucket-notifications custom-resource handler uses the "
                "AWS managed basic execution policy (log writes only); CDK owns its role."))
        for check, reason in _NOTIFICATIONS_HANDLER_SKIPS.items():
            skip_checkov(handler, check, reason)


def _check_props(settings: QueueSettings, *, max_receive_count: int,
                 queue_retention: Duration) -> None:
    check_range("batch_size", settings.batch_size, 1, 10_000)
    check_range("max_receive_count", max_receive_count, 1, 1000)
    reserved, wanted = settings.reserved_concurrency, settings.max_concurrency
    if reserved is not None:
        check_range("reserved_concurrency", reserved, 2, 100_000)
    if wanted is not None:
        check_range("max_concurrency", wanted, 2, 1000)
        if reserved is not None and wanted > reserved:
            raise ValueError(
                f"max_concurrency ({wanted}) must not exceed reserved_concurrency "
                f"({reserved}): the queue's extra invocations would be throttled and their "
                "messages received again, toward the DLQ")
    # A claim's lease is the timeout plus a minute; from 30 s on, the visibility timeout
    # (6 x timeout) outlasts it, so a deferred message comes back after the lease ends.
    settings.check_function(min_timeout_seconds=30, owned=("ephemeral_storage_size",))
    check_seconds("max_batching_window", settings.max_batching_window, 0, 300)
    check_seconds("queue_retention", queue_retention, 60, 1_209_600)
    if settings.batch_size > 10 and settings.max_batching_window.to_seconds() == 0:
        raise ValueError("batch_size above 10 needs a max_batching_window of at least "
                         "1 second (an SQS event source rule)")


def _max_concurrency(settings: QueueSettings) -> int | None:
    """The event source's cap: the one given, else the reservation (at most SQS's 1000)."""
    if settings.max_concurrency is not None:
        return settings.max_concurrency
    if settings.reserved_concurrency is None:
        return None
    return min(settings.reserved_concurrency, 1000)
