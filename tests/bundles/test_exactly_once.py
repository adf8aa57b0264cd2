"""The fault-injection proof, small: every object in exactly one bundle, under faults.

``python -m local_aws.bundles_harness`` runs it bigger.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from local_aws import bundles_harness as harness
from local_aws.server import MotoServer, client
from streamagg_bundles.processor import PlannedBundle
from streamagg_bundles.stores import ClaimTable, record_key

_runs = itertools.count(1)


@pytest.fixture
def clients(moto: MotoServer) -> tuple[Any, Any, str]:
    s3, ddb = client("s3", moto.endpoint_url), client("dynamodb", moto.endpoint_url)
    return s3, ddb, f"proof-{next(_runs)}"


def _setup(s3: Any, ddb: Any, suffix: str, seed: int, count: int, **settings: Any) -> tuple[
        list[harness.Uploaded], Any]:
    sources = (f"v-{suffix}", f"p-{suffix}")
    harness.create_buckets(s3, distribution=f"d-{suffix}", sources=sources)
    harness.create_claim_table(ddb, f"claims-{suffix}")
    objects = harness.upload_workload(s3, seed=seed, count=count, buckets=sources)
    config = harness.harness_config(distribution_bucket_name=f"d-{suffix}",
                                    idempotency_table_name=f"claims-{suffix}", **settings)
    return objects, config


@pytest.mark.parametrize(("seed", "max_receive_count"), [(11, 5), (12, 2)])
def test_every_object_is_in_exactly_one_bundle_under_faults(
        clients: tuple[Any, Any, str], seed: int, max_receive_count: int) -> None:
    s3, ddb, suffix = clients
    objects, config = _setup(s3, ddb, suffix, seed, 120)

    result = harness.run(objects, seed=seed, ddb=ddb, s3=s3, config=config,
                         throttle_rate=0.05, lost_response_rate=0.12, crash_rate=0.25,
                         max_receive_count=max_receive_count)

    differences = harness.compare(objects, s3, config.distribution_bucket_name)
    assert not differences, differences
    assert differences.bundles >= len(objects) // config.max_bundle_objects
    # The faults did happen: a run without them proves nothing.
    assert result.crashed_invocations > 0
    assert result.storage_faults.get("throttled", 0) > 0
    assert result.storage_faults.get("lost_response", 0) > 0
    assert result.queue.duplicate_deliveries > 0
    assert result.queue.lost_deletes > 0
    if max_receive_count == 2:  # messages reached the DLQ and were redriven
        assert result.queue.redriven > 0


def test_seed_001_bundles_are_exact_and_keep_the_hour_of_their_first_claim(
        clients: tuple[Any, Any, str]) -> None:
    """Plain gzip bundles partitioned by write time, under the same faults: the clock jumps
    by the visibility timeout (90 minutes) whenever only delayed messages are left, so
    retries and takeovers run hours after the first claim."""
    s3, ddb, suffix = clients
    objects, config = _setup(s3, ddb, suffix, 14, 80, profile="seed-001")

    result = harness.run(objects, seed=14, ddb=ddb, s3=s3, config=config, crash_rate=0.25)

    claims = ClaimTable(ddb, config.idempotency_table_name, config.idempotency_ttl_days)
    differences = harness.compare(objects, s3, config.distribution_bucket_name, claims=claims)
    assert not differences, differences
    assert result.crashed_invocations > 0
    hours = set()
    for key in harness.bundle_versions(s3, config.distribution_bucket_name):
        assert re.fullmatch(r"bundles/\d{4}/\d{2}/\d{2}/\d{2}/bundle-[0-9a-f]{32}\.gz", key)
        record = ddb.get_item(TableName=config.idempotency_table_name,
                              Key=record_key(key))["Item"]
        claimed = datetime.fromtimestamp(int(record["created_at"]["N"]) / 1000, UTC)
        assert key.startswith(f"bundles/{claimed:%Y/%m/%d/%H}/")
        hours.add(claimed.hour)
    assert len(hours) > 1  # retries did run in later hours


def test_the_harness_catches_a_bundler_without_claims(
        clients: tuple[Any, Any, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: with claims that always succeed, duplicates must be reported."""
    s3, ddb, suffix = clients
    objects, config = _setup(s3, ddb, suffix, 13, 40)

    def claim_everything(self: Any, bundle: PlannedBundle, **_: Any) -> dict[str, set[str]]:
        return {}

    def nothing_recorded(self: Any, bundle_key: str) -> None:
        return None

    monkeypatch.setattr("streamagg_bundles.stores.ClaimTable.claim", claim_everything)
    monkeypatch.setattr("streamagg_bundles.stores.ClaimTable.complete", nothing_recorded)
    harness.run(objects, seed=13, ddb=ddb, s3=s3, config=config, crash_rate=0.0,
                s3_duplicate_rate=0.5)

    differences = harness.compare(objects, s3, config.distribution_bucket_name)
    assert differences.repeated
