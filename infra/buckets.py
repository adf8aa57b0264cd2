"""Settings every bucket the construct creates shares (archive, access logs, query results)."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_s3 as s3

SECURE_BUCKET_DEFAULTS: dict[str, Any] = {
    "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
    "enforce_ssl": True,
    "encryption": s3.BucketEncryption.S3_MANAGED,
    "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    "versioned": True,
    "removal_policy": RemovalPolicy.RETAIN,
}
"""Private, SSL only, encrypted, versioned, ACLs off, kept when the stack is deleted."""
