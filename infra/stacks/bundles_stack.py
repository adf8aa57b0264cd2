"""``BundlesStack``: the example stack of seed 001, an :class:`ObjectBundler` on its own.

A new ingest bucket, its bundler and the replicated distribution/archive pair. Bundles
go under ``bundles/``; the remaining settings are the construct's defaults.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from ..bundles import ObjectBundler


class BundlesStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.bundler = ObjectBundler(self, "Bundler", bundle_prefix="bundles/")
        # Not on the KMS key: moto cannot create a tagged AWS::KMS::Key from a template.
        Tags.of(self).add("project", "stream-aggregator",
                          exclude_resource_types=["AWS::KMS::Key"])
        bundler = self.bundler
        outputs = {
            "IngestBucketName": bundler.ingest_bucket.bucket_name,
            "QueueUrl": bundler.queue.queue_url,
            "DeadLetterQueueUrl": bundler.dead_letter_queue.queue_url,
            "DistributionBucketName": bundler.distribution_bucket.bucket_name,
            "ArchiveBucketName": bundler.archive_bucket.bucket_name,
            "IdempotencyTableName": bundler.idempotency_table.table_name,
            "FunctionName": bundler.function.function_name,
            "DashboardName": bundler.dashboard.dashboard_name,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
