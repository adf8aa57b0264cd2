"""zae-limiter itself writes the table; its own reader must see exactly what it acquired."""

from __future__ import annotations

import gzip

from aggregator.config import AggregatorConfig
from local_aws.traffic import TtlEmulator, generate, remove_audit_items, zae_limiter
from streamagg_engine.windows import Window
from tests.moto_fixtures import LocalAws


def test_zae_limiters_reader_returns_exactly_the_tokens_acquired(aws: LocalAws) -> None:
    table, stream = aws.create_zae_table()
    limiter = zae_limiter(aws.endpoint_url, table, "us-east-1")
    traffic = generate(limiter, seed=7, entities=3, acquisitions=40)
    bucket = aws.create_bucket()
    ttl = TtlEmulator()
    remove_audit_items(aws.ddb, table, traffic, ttl)
    config = AggregatorConfig(table_name=table, archive_bucket_name=bucket,
                              snapshot_windows=(Window.HOURLY, Window.DAILY, Window.MONTHLY))
    report = aws.drain(stream, config, batch_size=10, ttl_keys=ttl.is_ttl_delete)
    assert report.records_sent_to_dlq == 0

    seen: dict[tuple[str, str, str], int] = {}
    for entity, resource in {(entity, resource) for entity, resource, _ in traffic.tokens}:
        snapshots, _next = limiter.get_usage_snapshots(
            entity_id=entity, resource=resource, window_type="daily", limit=100)
        for snapshot in snapshots:
            for name, amount in snapshot.counters.items():
                key = (entity, resource, name)
                seen[key] = seen.get(key, 0) + amount
    assert seen == {k: v for k, v in traffic.tokens.items() if v}

    summary = limiter.get_usage_summary(entity_id="tenant-0", resource="gpt-4",
                                        window_type="monthly")
    assert summary.total == {
        name: traffic.tokens[("tenant-0", "gpt-4", name)] for name in ("rpm", "tpm")
        if traffic.tokens[("tenant-0", "gpt-4", name)]
    }
    archived = sum(gzip.decompress(body).count(b"\n") for body in aws.objects(bucket).values())
    assert archived == traffic.audit_removed_by_ttl + traffic.audit_removed_by_hand
    assert traffic.audit_removed_by_ttl > 0
