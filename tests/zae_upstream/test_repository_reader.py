"""The usage-reader tests of zae-limiter 0.17.0's ``tests/unit/test_repository.py``
(``TestRepositoryUsageSnapshots``), ported so that our handler writes what the reader reads.

Upstream puts snapshot items into the table by hand and reads them with its
``Repository.get_usage_snapshots`` / ``get_usage_summary``. Here the same usage arrives
as bucket MODIFY records through our Lambda entry point (``support.Zae.invoke_handler``),
and zae-limiter's own ``SyncRepository`` reads the snapshots our handler wrote. Upstream's
data set is reproduced exactly: its daily snapshot exists only for entity-1 on gpt-4, so
those records go through a handler configured for hourly and daily windows, the rest
through one configured for hourly only.

Counts: 17 upstream tests (22 cases with parameters); 15 ported (20 cases), 20 passing, 3
asserting a deviation on purpose: ``total_events`` (upstream's fixture stores the sum of
the counters; ours counts the changes that made the snapshot: README "Counting"), an
unknown window type (upstream's reader falls back on such an item; ours can never write
one: the setting is refused by name at synth and at start), and an unusable
``window_start`` (ours computes it from the record's time; a record whose time is
unusable is skipped as malformed, so no such item exists).

Not ported: ``test_get_usage_snapshots_requires_entity_or_resource`` and
``test_get_usage_summary_requires_entity_or_resource`` check the reader's argument
validation; no aggregator output is involved.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest
from zae_limiter import schema

from aggregator.config import AggregatorConfig
from local_aws.server import FAKE_REGION, MotoServer, client
from local_aws.traffic import zae_limiter
from streamagg_engine.errors import ConfigError
from streamagg_engine.windows import Window
from tests.zae_upstream import support
from tests.zae_upstream.support import Zae, bucket_image, stream_record

zae_moto = support.zae_moto

HOURLY_AND_DAILY = (Window.HOURLY, Window.DAILY)
HOURLY = (Window.HOURLY,)

SNAPSHOTS_DATA: list[tuple[str, str, tuple[Window, ...], str, dict[str, int]]] = [
    # Entity 1, gpt-4, hourly snapshots; their sum is upstream's daily snapshot
    ("entity-1", "gpt-4", HOURLY_AND_DAILY, "2024-01-15T10:00:00Z", {"tpm": 1000, "rpm": 5}),
    ("entity-1", "gpt-4", HOURLY_AND_DAILY, "2024-01-15T11:00:00Z", {"tpm": 2000, "rpm": 10}),
    ("entity-1", "gpt-4", HOURLY_AND_DAILY, "2024-01-15T12:00:00Z", {"tpm": 1500, "rpm": 8}),
    # Entity 1, gpt-3.5, hourly
    ("entity-1", "gpt-3.5", HOURLY, "2024-01-15T10:00:00Z", {"tpm": 500, "rpm": 3}),
    # Entity 2, gpt-4, hourly
    ("entity-2", "gpt-4", HOURLY, "2024-01-15T10:00:00Z", {"tpm": 3000, "rpm": 15}),
    ("entity-2", "gpt-4", HOURLY, "2024-01-15T11:00:00Z", {"tpm": 2500, "rpm": 12}),
]
"""Upstream's ``repo_with_snapshots`` data, with the windows our handler is set to write."""


def epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class Buckets:
    """Bucket items whose cumulative counters grow as tokens are consumed, one limit per
    record (so a record is one limit change, whichever way ``total_events`` counts)."""

    def __init__(self, zae: Zae) -> None:
        self.zae = zae
        self.totals: dict[tuple[str, str], dict[str, int]] = {}

    def consume(self, entity: str, resource: str, at: str,
                tokens: Mapping[str, int]) -> list[dict[str, Any]]:
        """The MODIFY records of ``tokens`` consumed a minute apart from ``at`` on."""
        totals = self.totals.setdefault((entity, resource), {"tpm": 0, "rpm": 0})
        records = []
        for minute, (name, amount) in enumerate(tokens.items()):
            old = bucket_image(self.zae.ns, entity, resource, dict(totals))
            totals[name] += amount * 1000
            new = bucket_image(self.zae.ns, entity, resource, dict(totals))
            records.append(stream_record(old, new, created_ms=epoch_ms(at) + minute * 60_000))
        return records


@pytest.fixture(scope="module")
def zae(zae_moto: MotoServer) -> Zae:
    """One zae-limiter table for the module: every test reads or writes its own entities,
    so they share it (a table per test made this file take 54 s instead of 14 s)."""
    url = zae_moto.endpoint_url
    ddb = client("dynamodb", url)
    table = f"zae-reader-{int(time.time() * 1000)}"
    ddb.create_table(**schema.get_table_definition(table))
    repository = zae_limiter(url, table, FAKE_REGION)._repository
    config = AggregatorConfig(table_name=table, enable_archival=False, enable_refill=False,
                              snapshot_windows=HOURLY_AND_DAILY)
    return Zae(url, ddb, table, repository.namespace_id, config, _reader=repository)


@pytest.fixture(scope="module")
def repo_with_snapshots(zae: Zae) -> Any:
    """Upstream's fixture: the snapshots, written by our handler; zae-limiter's reader."""
    buckets = Buckets(zae)
    for windows in (HOURLY_AND_DAILY, HOURLY):
        records = [record for entity, resource, wanted, start, counters in SNAPSHOTS_DATA
                   if wanted == windows
                   for record in buckets.consume(entity, resource, start, counters)]
        assert zae.invoke_handler(records, snapshot_windows=windows) == {
            "batchItemFailures": []}
    return zae.reader()


class TestRepositoryUsageSnapshots:
    def test_get_usage_snapshots_by_entity(self, repo_with_snapshots: Any) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_by_entity."""  # noqa: E501
        snapshots, next_key = repo_with_snapshots.get_usage_snapshots(entity_id="entity-1")
        assert len(snapshots) == 5
        assert all(s.entity_id == "entity-1" for s in snapshots)
        assert next_key is None

    def test_get_usage_snapshots_by_entity_and_resource(self, repo_with_snapshots: Any) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_by_entity_and_resource."""  # noqa: E501
        snapshots, _ = repo_with_snapshots.get_usage_snapshots(entity_id="entity-1",
                                                               resource="gpt-4")
        assert len(snapshots) == 4
        assert all(s.entity_id == "entity-1" for s in snapshots)
        assert all(s.resource == "gpt-4" for s in snapshots)

    def test_get_usage_snapshots_by_resource_gsi2(self, repo_with_snapshots: Any) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_by_resource_gsi2."""  # noqa: E501
        snapshots, _ = repo_with_snapshots.get_usage_snapshots(resource="gpt-4")
        assert len(snapshots) == 6
        assert all(s.resource == "gpt-4" for s in snapshots)
        assert {s.entity_id for s in snapshots} == {"entity-1", "entity-2"}

    def test_get_usage_snapshots_filter_by_window_type(self, repo_with_snapshots: Any) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_filter_by_window_type."""  # noqa: E501
        snapshots, _ = repo_with_snapshots.get_usage_snapshots(
            entity_id="entity-1", resource="gpt-4", window_type="hourly")
        assert len(snapshots) == 3
        assert all(s.window_type == "hourly" for s in snapshots)

    def test_get_usage_snapshots_filter_by_time_range(self, repo_with_snapshots: Any) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_filter_by_time_range."""  # noqa: E501
        snapshots, _ = repo_with_snapshots.get_usage_snapshots(
            entity_id="entity-1", resource="gpt-4",
            start_time="2024-01-15T10:00:00Z", end_time="2024-01-15T11:00:00Z")
        assert {s.window_start for s in snapshots} == {"2024-01-15T10:00:00Z",
                                                        "2024-01-15T11:00:00Z"}
        assert len(snapshots) == 2

    def test_get_usage_snapshots_empty_result(self, repo_with_snapshots: Any) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_empty_result."""  # noqa: E501
        snapshots, next_key = repo_with_snapshots.get_usage_snapshots(entity_id="nonexistent")
        assert snapshots == []
        assert next_key is None

    def test_get_usage_snapshots_pagination(self, repo_with_snapshots: Any) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_pagination."""  # noqa: E501
        pages: list[tuple[int, bool]] = []
        all_keys: list[tuple[str, str, str]] = []
        next_key = None
        for _ in range(3):
            snapshots, next_key = repo_with_snapshots.get_usage_snapshots(
                entity_id="entity-1", limit=2, next_key=next_key)
            pages.append((len(snapshots), next_key is None))
            all_keys += [(s.resource, s.window_start, s.window_type) for s in snapshots]
            if next_key is None:
                break
        assert pages == [(2, False), (2, False), (1, True)]
        assert len(all_keys) == len(set(all_keys)) == 5

    def test_get_usage_snapshots_counters_extracted(self, repo_with_snapshots: Any) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_counters_extracted.

        Deviation: upstream's fixture stores ``total_events`` as the sum of the counters
        (1005); ours counts the changes that made the snapshot: here a tpm and an rpm
        change, 2.
        """  # noqa: E501
        (snapshot,) = repo_with_snapshots.get_usage_snapshots(
            entity_id="entity-1", resource="gpt-4", window_type="hourly",
            start_time="2024-01-15T10:00:00Z", end_time="2024-01-15T10:00:00Z")[0]
        assert snapshot.counters == {"tpm": 1000, "rpm": 5}
        assert snapshot.total_events == 2

    def test_get_usage_snapshots_window_end_calculated(self, repo_with_snapshots: Any) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_window_end_calculated."""  # noqa: E501
        (snapshot,) = repo_with_snapshots.get_usage_snapshots(
            entity_id="entity-1", resource="gpt-4", window_type="hourly",
            start_time="2024-01-15T10:00:00Z", end_time="2024-01-15T10:00:00Z")[0]
        assert snapshot.window_start == "2024-01-15T10:00:00Z"
        assert "10:59:59" in snapshot.window_end

    def test_get_usage_summary_aggregation(self, repo_with_snapshots: Any) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_summary_aggregation."""  # noqa: E501
        summary = repo_with_snapshots.get_usage_summary(entity_id="entity-1", resource="gpt-4",
                                                        window_type="hourly")
        assert summary.snapshot_count == 3
        assert summary.total == {"tpm": 4500, "rpm": 23}
        assert summary.average["tpm"] == 1500.0
        assert abs(summary.average["rpm"] - 7.666666666666667) < 0.001
        assert summary.min_window_start == "2024-01-15T10:00:00Z"
        assert summary.max_window_start == "2024-01-15T12:00:00Z"

    def test_get_usage_summary_empty(self, repo_with_snapshots: Any) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_summary_empty."""  # noqa: E501
        summary = repo_with_snapshots.get_usage_summary(entity_id="nonexistent")
        assert summary.snapshot_count == 0
        assert summary.total == {}
        assert summary.average == {}
        assert summary.min_window_start is None
        assert summary.max_window_start is None

    def test_get_usage_snapshots_skips_malformed_items(self, zae: Zae) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_skips_malformed_items.

        Upstream's reader skips a malformed item; ours never writes one: the malformed
        record (a counter that is not a number) is skipped by the handler, the valid one
        is counted, and the reader sees exactly the valid one.
        """  # noqa: E501
        buckets = Buckets(zae)
        (malformed,) = buckets.consume("test-malformed", "gpt-4", "2024-01-15T10:00:00Z",
                                       {"tpm": 100})
        malformed["dynamodb"]["NewImage"]["b_tpm_tc"] = {"N": "not-a-number"}
        valid = buckets.consume("test-malformed", "gpt-4", "2024-01-15T11:00:00Z", {"tpm": 200})
        assert zae.invoke_handler([malformed, *valid]) == {"batchItemFailures": []}
        snapshots, _ = zae.reader().get_usage_snapshots(entity_id="test-malformed",
                                                        window_type="hourly")
        assert [(s.window_start, s.counters) for s in snapshots] == [
            ("2024-01-15T11:00:00Z", {"tpm": 200})]

    @pytest.mark.parametrize(("window_type", "window_start", "expected_end_contains"), [
        ("hourly", "2024-01-15T10:00:00Z", "10:59:59"),
        ("daily", "2024-01-15T00:00:00Z", "23:59:59"),
        ("monthly", "2024-01-01T00:00:00Z", "2024-01-31"),
        ("monthly", "2024-12-01T00:00:00Z", "2024-12-31"),
        ("monthly", "2024-02-01T00:00:00Z", "2024-02-29"),
        ("monthly", "2023-02-01T00:00:00Z", "2023-02-28"),
    ])
    def test_get_usage_snapshots_window_end_by_type(
        self, zae: Zae, window_type: str, window_start: str, expected_end_contains: str,
    ) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_window_end_by_type.

        The record comes half an hour into its window: our handler finds the window's
        start itself.
        """  # noqa: E501
        entity_id = f"test-{window_type}-{window_start[:10]}"
        (change,) = Buckets(zae).consume(entity_id, "gpt-4", window_start, {"tpm": 1000})
        change["dynamodb"]["ApproximateCreationDateTime"] += 1800
        zae.invoke_handler([change], snapshot_windows=(Window(window_type),))
        (snapshot,) = zae.reader().get_usage_snapshots(entity_id=entity_id)[0]
        assert snapshot.window_type == window_type
        assert snapshot.window_start == window_start
        assert expected_end_contains in snapshot.window_end

    def test_get_usage_snapshots_unknown_window_type(self) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_unknown_window_type.

        Deviation: upstream's reader falls back to ``window_start`` for a window type it
        does not know; ours can never write such an item: the setting is refused by name
        (at ``cdk synth`` and when the function starts).
        """  # noqa: E501
        with pytest.raises(ConfigError, match=r"unknown window 'unknown'"):
            AggregatorConfig.from_env({"SNAPSHOT_WINDOWS": "unknown"})

    def test_get_usage_snapshots_invalid_window_start(self, zae: Zae) -> None:
        """Upstream: unit/test_repository.py::TestRepositoryUsageSnapshots::test_get_usage_snapshots_invalid_window_start.

        Deviation: upstream's reader returns an unparsable ``window_start`` as the
        window's end; ours computes ``window_start`` from the record's time, and a record
        whose time is unusable is skipped as malformed: no item is written at all.
        """  # noqa: E501
        (change,) = Buckets(zae).consume("invalid-date", "gpt-4", "2024-01-15T10:00:00Z",
                                         {"tpm": 100})
        change["dynamodb"]["ApproximateCreationDateTime"] = "invalid-date"
        assert zae.invoke_handler([change]) == {"batchItemFailures": []}
        assert zae.reader().get_usage_snapshots(entity_id="invalid-date") == ([], None)
