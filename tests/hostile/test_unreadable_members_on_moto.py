"""The bundler on moto's S3: a member S3 refuses to read is left out, its bundle is written."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from local_aws.bundles_harness import Uploaded, create_buckets, create_claim_table, s3_event_body
from local_aws.event_source_mapping import sqs_record
from streamagg_bundles.config import BundlerConfig
from streamagg_bundles.handler import build_runtime, handle
from streamagg_bundles.tarball import read_manifest
from tests.hostile.worlds import NOW_MS, log_lines
from tests.moto_fixtures import LocalAws

CONFIG = BundlerConfig(distribution_bucket_name="hostile-distribution",
                       idempotency_table_name="hostile-claims", max_workers=2)
WHEN = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)


def test_a_member_in_a_bucket_that_does_not_exist_is_left_out_of_its_bundle(
    aws: LocalAws, capsys: Any,
) -> None:
    create_buckets(aws.s3, distribution=CONFIG.distribution_bucket_name,
                   sources=("hostile-versioned", "hostile-plain"))
    create_claim_table(aws.ddb, CONFIG.idempotency_table_name)
    members = []
    for key in ("a.csv", "b.csv"):
        etag = aws.s3.put_object(Bucket="hostile-plain", Key=key, Body=b"12345")["ETag"]
        members.append(Uploaded("hostile-plain", key, 5, etag.strip('"'), None, "0A", WHEN))
    members.append(Uploaded("hostile-no-such-bucket", "c.csv", 5, "0" * 32, None, "0B", WHEN))
    runtime = build_runtime(CONFIG.to_env(), dynamodb=aws.ddb, s3=aws.s3)
    capsys.readouterr()

    # One message announcing all three: one bundle is planned for them.
    response = handle({"Records": [sqs_record("m1", s3_event_body(members))]}, runtime,
                      now_ms=NOW_MS, owner="req-1")

    assert response == {"batchItemFailures": []}
    listing = aws.s3.list_objects_v2(Bucket=CONFIG.distribution_bucket_name)["Contents"]
    (bundle,) = [aws.s3.get_object(Bucket=CONFIG.distribution_bucket_name, Key=o["Key"])
                 for o in listing]
    manifest = read_manifest(io.BytesIO(bundle["Body"].read()))
    assert sorted(o["key"] for o in manifest["objects"]) == ["a.csv", "b.csv"]
    assert [(m["key"], m["reason"]) for m in manifest["missing"]] == \
        [("c.csv", "unreadable: NoSuchBucket")]
    completed = [line for line in log_lines(capsys.readouterr().out)
                 if line.get("message") == "batch completed"]
    assert (completed[0]["objects_bundled"], completed[0]["objects_unreadable"]) == (2, 1)
    assert completed[0]["failed_messages"] == 0
