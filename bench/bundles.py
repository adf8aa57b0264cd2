"""The bundler (seed 001) over HTTP: the real handler against the seed's own design.

- **Workload**: :func:`local_aws.bundles_harness.upload_workload` puts object versions of
  0-16 KiB into moto's S3 (a versioned and an unversioned bucket, keys with spaces,
  ``+``, ``%`` and non-ASCII, some keys written twice), one S3 event message each, in SQS
  batches of 10 (the construct's default ``batch_size``).
- **Ours**: ``streamagg_bundles.handler.handle`` with the function's own SDK settings
  over moto's server: the batch's objects claimed in a transaction, streamed into one
  gzip tar with a manifest, written with a conditional PUT, the claims marked done.
- **Baseline**, seed 001's design: per message, Powertools' idempotency record (a
  conditional PutItem "in progress", then a PutItem "completed" with the result), every
  object read in turn and its content appended to one gzip bundle per batch, one PUT.
- ``bundles_results_off_truth``: objects missing from every bundle, in two, not in the
  workload, plus bundle keys written twice (``local_aws.bundles_harness.compare``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any
from urllib.parse import unquote_plus

from local_aws import bundles_harness as harness
from local_aws.event_source_mapping import sqs_record
from local_aws.proof import now_ms
from local_aws.server import client
from streamagg_bundles.handler import build_runtime, handle
from streamagg_engine.clients import sdk_config

from . import pipelines
from .figures import Figure, Goal
from .moto_process import SerialWrites
from .pipelines import RequestLog, Run, counted_client, failed_count, timed_batches

BATCH_SIZE = 10
SEED = 3
MAX_OBJECT_BYTES = 16 * 1024
NAIVE_BUCKET = "naive-distribution"
NAIVE_TABLE = "naive-idempotency"


@dataclass(frozen=True)
class Outcome:
    ours: Run
    naive: Run
    off_truth: int
    bundles: int


def measure(endpoint_url: str, objects: int, say: Callable[[str], None]) -> Outcome:
    config = harness.harness_config(max_bundle_input_mb=100, max_bundle_objects=99,
                                    log_level="WARNING")
    s3, ddb = client("s3", endpoint_url), client("dynamodb", endpoint_url)
    harness.create_buckets(s3)
    s3.create_bucket(Bucket=NAIVE_BUCKET)
    harness.create_claim_table(ddb, config.idempotency_table_name)
    harness.create_claim_table(ddb, NAIVE_TABLE)
    say(f"bundles: uploading {objects:,} source objects to moto")
    uploaded = harness.upload_workload(s3, seed=SEED, count=objects,
                                       max_size=MAX_OBJECT_BYTES)
    messages = [sqs_record(f"msg-{i:06d}", harness.s3_event_body([obj]))
                for i, obj in enumerate(uploaded)]
    batches = [messages[i:i + BATCH_SIZE] for i in range(0, len(messages), BATCH_SIZE)]

    log = RequestLog()
    sdk = sdk_config(config.max_workers * 2, read_timeout=30)
    runtime = build_runtime(config.to_env(),
                            dynamodb=SerialWrites(
                                counted_client("dynamodb", endpoint_url, log, sdk)),
                            s3=counted_client("s3", endpoint_url, log, sdk))
    owners = count(1)

    def ours(batch: list[dict[str, Any]]) -> int:
        response = handle({"Records": batch}, runtime, now_ms=now_ms(),
                          owner=f"bench-{next(owners)}")
        return failed_count(response, batch, lambda r: r["messageId"], stream=False)

    try:
        say(f"bundles: {len(messages):,} messages through the handler over HTTP")
        ours_run = timed_batches(batches, ours, log, say=say, label="bundles, ours")
    finally:
        runtime.pool.shutdown(wait=True)
    differences = harness.compare(uploaded, s3, config.distribution_bucket_name)

    naive_log = RequestLog()
    naive = NaiveBundler(counted_client("dynamodb", endpoint_url, naive_log),
                         counted_client("s3", endpoint_url, naive_log))
    say("bundles: the same batches through the naive baseline")
    naive_run = timed_batches(batches, naive.process, naive_log, say=say,
                              label="bundles, baseline")
    off = (len(differences.missing) + sum(differences.repeated.values())
           + len(differences.unexpected) + len(differences.rewritten_keys))
    return Outcome(ours_run, naive_run, off, differences.bundles)


def figures(outcome: Outcome) -> list[Figure]:
    return [*pipelines.figures("bundles", "objects", outcome.ours, outcome.naive),
            Figure("bundles_results_off_truth", outcome.off_truth, "objects", Goal("==", 0))]


def note(outcome: Outcome) -> str:
    ours, naive = outcome.ours, outcome.naive
    return (f"Bundles (seed 001): {ours.records:,} objects of 0-{MAX_OBJECT_BYTES // 1024} KiB "
            f"in batches of {BATCH_SIZE} messages over HTTP to moto, {outcome.bundles} "
            f"bundles; ours {ours.writes:,} write requests, {ours.median_batch_ms:,.0f} ms "
            f"and {ours.median_batch_cpu_ms:,.0f} ms CPU per batch (median); baseline "
            f"{naive.writes:,} write requests, {naive.median_batch_ms:,.0f} ms and "
            f"{naive.median_batch_cpu_ms:,.0f} ms CPU; {outcome.off_truth} objects off the "
            f"ground truth, {ours.failed_records} messages reported failed.")


class NaiveBundler:
    """Seed 001's function as its document describes it: Powertools' idempotency record
    per message (in progress, then completed), each object read in turn, one gzip of the
    batch's contents."""

    def __init__(self, dynamodb: Any, s3: Any, *, table: str = NAIVE_TABLE,
                 bucket: str = NAIVE_BUCKET) -> None:
        self._ddb, self._s3, self._table, self._bucket = dynamodb, s3, table, bucket

    def process(self, messages: Sequence[dict[str, Any]]) -> int:
        contents: list[bytes] = []
        keys: list[str] = []
        for message in messages:
            key = hashlib.sha256(message["body"].encode()).hexdigest()
            expiry = {"N": str(int(time.time()) + 3600)}
            self._ddb.put_item(
                TableName=self._table,
                Item={"pk": {"S": key}, "status": {"S": "INPROGRESS"}, "expiration": expiry},
                ConditionExpression="attribute_not_exists(pk)")
            for record in json.loads(message["body"])["Records"]:
                obj = record["s3"]["object"]
                request = {"Bucket": record["s3"]["bucket"]["name"],
                           "Key": unquote_plus(obj["key"])}
                if "versionId" in obj:
                    request["VersionId"] = obj["versionId"]
                contents.append(self._s3.get_object(**request)["Body"].read())
            keys.append(key)
            self._ddb.put_item(TableName=self._table, Item={
                "pk": {"S": key}, "status": {"S": "COMPLETED"}, "expiration": expiry,
                "data": {"S": "ok"}})
        self._s3.put_object(Bucket=self._bucket,
                            Key=f"{time.strftime('%Y/%m/%d/%H')}/bundle-{keys[0][:16]}.gz",
                            Body=gzip.compress(b"".join(contents)))
        return 0
