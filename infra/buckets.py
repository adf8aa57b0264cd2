"""The buckets the constructs create: one set of secure defaults, one way to merge the
caller's props over them, one access-log bucket, one archive bucket.

Each construct builds its buckets in its own scope under the ids it always used
(``ArchiveBucket``, ``AccessLogsBucket``, ...), so logical IDs do not depend on which
helper made them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .parts import acknowledge_wildcard, struct_kwargs
from .suppressions import skip_checkov

SECURE_BUCKET_DEFAULTS: dict[str, Any] = {
    "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
    "enforce_ssl": True,
    "encryption": s3.BucketEncryption.S3_MANAGED,
    "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    "versioned": True,
    "removal_policy": RemovalPolicy.RETAIN,
}
"""Private, SSL only, encrypted, versioned, ACLs off, kept when the stack is deleted."""


@dataclass(frozen=True)
class BucketDefaults:
    """How long the construct's buckets keep what nobody reads any more."""

    noncurrent_version_expiration: Duration = Duration.days(30)
    """Overwritten or deleted objects (and access logs) are kept this long."""
    access_logs_expiration: Duration = Duration.days(365)
    """Server access logs are deleted after this."""


@dataclass(frozen=True)
class ArchiveDefaults(BucketDefaults):
    """... and how an archive bucket moves its objects to colder storage."""

    archive_infrequent_access_after: Duration = Duration.days(90)
    """Archive objects move to S3 Standard-IA after this."""
    archive_glacier_after: Duration = Duration.days(365)
    """... and to Glacier Instant Retrieval (still readable by Athena) after this."""


ARCHIVE_DEFAULTS = ArchiveDefaults()


def archive_lifecycle_rules() -> list[s3.LifecycleRule]:
    """The archive bucket's default lifecycle: colder storage with age, old versions go."""
    return [s3.LifecycleRule(
        id="archive-tiering",
        transitions=[
            s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                          transition_after=ARCHIVE_DEFAULTS.archive_infrequent_access_after),
            s3.Transition(storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                          transition_after=ARCHIVE_DEFAULTS.archive_glacier_after),
        ],
        noncurrent_version_expiration=ARCHIVE_DEFAULTS.noncurrent_version_expiration,
        abort_incomplete_multipart_upload_after=Duration.days(7),
    )]


def noncurrent_lifecycle_rules() -> list[s3.LifecycleRule]:
    """For a bucket whose current objects stay: old versions and stuck uploads go."""
    return [s3.LifecycleRule(
        id="expire-noncurrent",
        noncurrent_version_expiration=ARCHIVE_DEFAULTS.noncurrent_version_expiration,
        abort_incomplete_multipart_upload_after=Duration.days(7),
    )]


def access_logs_bucket(
    scope: Construct, *, whose: str,
    expiration: Duration = ARCHIVE_DEFAULTS.access_logs_expiration,
    noncurrent_version_expiration: Duration = ARCHIVE_DEFAULTS.noncurrent_version_expiration,
) -> s3.Bucket:
    """``AccessLogsBucket``: secure defaults, logs expire; ``whose`` names what it logs.

    It has no access logs of its own (logging it into itself would loop), which cdk-nag
    and checkov are told here, with that reason.
    """
    bucket = s3.Bucket(
        scope, "AccessLogsBucket", **SECURE_BUCKET_DEFAULTS,
        lifecycle_rules=[s3.LifecycleRule(
            id="expire-access-logs",
            expiration=expiration,
            noncurrent_version_expiration=noncurrent_version_expiration,
        )],
    )
    reason = (f"This is {whose} server access log destination; logging it into itself "
              "would loop.")
    Validations.of(bucket).acknowledge(Acknowledgment(id="AwsSolutions-S1", reason=reason))
    skip_checkov(bucket, "CKV_AWS_18", reason)
    return bucket


def secure_bucket(
    scope: Construct, construct_id: str, *, props: s3.BucketProps | None,
    lifecycle_rules: list[s3.LifecycleRule], access_logs: s3.IBucket | None,
    access_logs_prefix: str, **required: Any,
) -> s3.Bucket:
    """A new bucket: the secure defaults, then the caller's ``props`` over them
    (overriding a default is allowed and visible), then what the construct ``required``.

    Server access logs go to ``access_logs`` under ``access_logs_prefix`` unless the
    caller's props chose a destination.
    """
    kwargs: dict[str, Any] = {**SECURE_BUCKET_DEFAULTS, "lifecycle_rules": lifecycle_rules}
    user = struct_kwargs(props)
    if access_logs is not None and "server_access_logs_bucket" not in user:
        kwargs["server_access_logs_bucket"] = access_logs
        kwargs["server_access_logs_prefix"] = access_logs_prefix
    return s3.Bucket(scope, construct_id, **{**kwargs, **user, **required})


def archive_buckets(
    scope: Construct, *, enabled: bool, bucket: s3.IBucket | None,
    props: s3.BucketProps | None,
) -> tuple[s3.IBucket | None, s3.Bucket | None]:
    """The archive bucket (``bucket``, a new ``ArchiveBucket``, or None with archival off)
    and the access-log bucket made for a new one (None when the caller chose the log
    destination or no bucket was made).

    Raises:
        ValueError: both ``bucket`` and ``props`` were given, or either with archival off.
    """
    if bucket is not None and props is not None:
        raise ValueError(
            "archive_bucket and archive_bucket_props are mutually exclusive: pass an "
            "existing bucket or props for a new one, not both"
        )
    if not enabled and (bucket or props):
        raise ValueError(
            "archive_bucket/archive_bucket_props given but config.enable_archival is "
            "false: enable archival or drop the bucket argument"
        )
    if not enabled or bucket is not None:
        return bucket, None
    logs = None
    if "server_access_logs_bucket" not in struct_kwargs(props):
        logs = access_logs_bucket(scope, whose="the archive bucket's")
    archive = secure_bucket(
        scope, "ArchiveBucket", props=props, lifecycle_rules=archive_lifecycle_rules(),
        access_logs=logs, access_logs_prefix="archive-bucket/")
    return archive, logs


def grant_archive_puts(bucket: s3.IBucket, grantee: iam.IGrantable, role: iam.IRole,
                       prefix: str) -> None:
    """``s3:PutObject`` under ``prefix`` only (and encryption with the bucket's key)."""
    objects = bucket.arn_for_objects(f"{prefix}*")
    iam.Grant.add_to_principal(grantee=grantee, actions=["s3:PutObject"],
                               resource_arns=[objects])
    acknowledge_wildcard(role, objects, "Archive object keys are derived from the "
                         "records; puts are limited to the archive prefix.")
    if bucket.encryption_key is not None:
        bucket.encryption_key.grant_encrypt(grantee)
