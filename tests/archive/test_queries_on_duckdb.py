"""The README's example queries, run by DuckDB on archive objects the real handler wrote.

Audit items are written to a table on moto's server and removed, some by (emulated) TTL
and some by hand; the stream is drained through the real handler twice, with different
batch sizes, as a redelivery split differently would (so some records are archived
twice, in different objects). The objects are downloaded under their keys, and DuckDB
reads them through a view built from the synthesized Glue table: its columns, partition
keys and ``storage.location.template``. The queries come from the README's ``sql``
blocks, so the README cannot drift from what runs here.

Run with ``-rP`` (or ``-s``) to see each query's result as a Markdown table.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from aggregator.config import AggregatorConfig
from local_aws import MotoServer, client
from tests.factories import audit_image, n, s
from tests.moto_fixtures import LocalAws

from .support import (
    DUCKDB_TYPES,
    GlueTable,
    as_markdown,
    create_view,
    download,
    read_json_call,
    readme_queries,
)

ADMIN = "arn:aws:iam::123456789012:role/limits-admin"
OPS = "arn:aws:sts::123456789012:assumed-role/ops/alice"


@dataclass(frozen=True)
class Event:
    event_id: str
    entity: str
    action: str
    timestamp: str
    principal: str
    resource: str | None
    removal: str

    @property
    def day(self) -> tuple[int, int, int]:
        return int(self.timestamp[:4]), int(self.timestamp[5:7]), int(self.timestamp[8:10])

    def image(self) -> dict[str, Any]:
        item = audit_image(self.entity, self.event_id, action=self.action,
                           timestamp=self.timestamp, details={"M": {
                               "limits": {"L": [{"M": {"name": s("rpm"),
                                                       "capacity": n(100)}}]},
                               "reason": s(f"{self.action} by {self.principal.rsplit('/')[-1]}"),
                           }})
        item["principal"] = s(self.principal)
        item["resource"] = s(self.resource) if self.resource else {"NULL": True}
        return item


EVENTS = (
    Event("E01", "user-1", "entity_created", "2025-03-14T09:00:00Z", ADMIN, None, "ttl"),
    Event("E02", "user-1", "limits_set", "2025-03-14T23:59:59Z", ADMIN, "gpt-4", "ttl"),
    Event("E03", "user-2", "entity_created", "2025-03-14T12:30:00Z", OPS, None, "manual"),
    Event("E04", "user-1", "limits_set", "2025-03-15T00:00:00Z", OPS, "gpt-4", "manual"),
    Event("E05", "user-2", "limits_set", "2025-03-15T08:15:00Z", ADMIN, "claude", "ttl"),
    Event("E06", "user-2", "limits_deleted", "2025-03-15T08:20:00Z", ADMIN, "claude", "ttl"),
    Event("E07", "user-3", "entity_created", "2025-03-15T10:00:00Z", ADMIN, None, "manual"),
    Event("E08", "user-3", "bucket_reset", "2025-04-01T00:00:05Z", OPS, "gpt-4", "ttl"),
)
"""The audit trail: two days of March 2025 (across midnight) and one day outside it."""
MARCH = [e for e in EVENTS if e.day[:2] == (2025, 3)]


def expected_results() -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Each README query's columns and rows, worked out from :data:`EVENTS` alone."""
    per_entity = Counter((*e.day, e.entity) for e in MARCH)
    manual = sorted((e for e in MARCH if e.removal == "manual"),
                    key=lambda e: (e.timestamp, e.event_id))
    days = sorted({e.day for e in MARCH})
    return {
        "events-per-entity-per-day": (
            ["year", "month", "day", "entity_id", "events"],
            [(*key, count) for key, count in sorted(per_entity.items())],
        ),
        "manual-deletions": (
            ["timestamp", "entity_id", "action", "event_id", "principal", "resource"],
            [(e.timestamp, e.entity, e.action, e.event_id, e.principal, e.resource)
             for e in manual],
        ),
        "ttl-vs-manual": (
            ["year", "month", "day", "expired_by_ttl", "deleted_by_hand"],
            [(*day, sum(e.day == day and e.removal == "ttl" for e in MARCH),
              sum(e.day == day and e.removal == "manual" for e in MARCH)) for day in days],
        ),
    }


# --- the archive, made by the real handler on moto ------------------------------------


@pytest.fixture(scope="module")
def module_aws(moto: MotoServer) -> LocalAws:
    url = moto.endpoint_url
    return LocalAws(url, client("dynamodb", url), client("dynamodbstreams", url),
                    client("s3", url), client("sqs", url))


@pytest.fixture(scope="module")
def archive(module_aws: LocalAws) -> dict[str, bytes]:
    """Every archive object by key, after a first delivery and a differently split one."""
    aws = module_aws
    table, stream = aws.create_table("audit")
    bucket = aws.create_bucket()
    for event in EVENTS:
        image = event.image()
        aws.ddb.put_item(TableName=table, Item=image)
        aws.ddb.delete_item(TableName=table, Key={"PK": image["PK"], "SK": image["SK"]})
    ttl = {e.image()["SK"]["S"] for e in EVENTS if e.removal == "ttl"}
    config = AggregatorConfig(table_name=table, archive_bucket_name=bucket,
                              enable_refill=False)
    for batch_size in (4, 5):  # the second: a redelivery, split differently
        report = aws.drain(stream, config, batch_size=batch_size,
                           ttl_keys=lambda keys: keys["SK"]["S"] in ttl)
        assert report.records_sent_to_dlq == 0
    return aws.objects(bucket)


@pytest.fixture(scope="module")
def glue_table(catalog_templates: dict[str, dict[str, Any]]) -> GlueTable:
    return GlueTable.from_template(catalog_templates["Default"])


@pytest.fixture(scope="module")
def archive_root(archive: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive-bucket")
    download(archive, root)
    return root


@pytest.fixture
def con(glue_table: GlueTable, archive_root: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    create_view(connection, glue_table, archive_root)
    yield connection
    connection.close()


def _lines(archive: dict[str, bytes]) -> list[dict[str, Any]]:
    return [json.loads(line) for body in archive.values()
            for line in gzip.decompress(body).splitlines()]


def test_the_archive_holds_every_event_some_twice(archive: dict[str, bytes]) -> None:
    lines = _lines(archive)
    assert {line["event_id"] for line in lines} == {e.event_id for e in EVENTS}
    assert len(lines) > len(EVENTS)  # the redelivery wrote some records a second time
    removal = {line["event_id"]: line["removal"] for line in lines}
    assert removal == {e.event_id: e.removal for e in EVENTS}


# --- the README's queries --------------------------------------------------------------


def test_readme_has_exactly_the_tested_queries() -> None:
    assert sorted(readme_queries()) == sorted(expected_results())


@pytest.mark.parametrize("name", sorted(expected_results()))
def test_readme_query_answers_on_duckdb(con: duckdb.DuckDBPyConnection, name: str) -> None:
    sql = readme_queries()[name]
    cursor = con.execute(sql)
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    print(f"\n{sql}\n{as_markdown(columns, rows)}\n")
    assert (columns, rows) == expected_results()[name]


# --- the Glue table and what DuckDB reads agree ---------------------------------------

COMPATIBLE = {
    "string": ("VARCHAR", "JSON", "STRUCT(", "MAP(", "TIMESTAMP WITH TIME ZONE"),
    "int": ("INTEGER", "BIGINT"),
}
"""DuckDB's own reading of a JSON value -> the Glue types that read it too. A ``string``
column reads text, and an object as its JSON text (OpenX SerDe); DuckDB also recognises
the ISO-8601 text of the timestamp fields as timestamps."""


def test_glue_columns_are_what_the_archive_holds(
    glue_table: GlueTable, archive_root: Path
) -> None:
    """DuckDB detects the files' own columns; they are the Glue table's, in its order."""
    detected = duckdb.connect().execute(
        f"DESCRIBE SELECT * FROM {read_json_call(glue_table, archive_root, declared=False)}"
    ).fetchall()
    types = {row[0]: row[1] for row in detected}
    partitions = [name for name, _ in glue_table.partition_keys]
    assert [row[0] for row in detected if row[0] not in partitions] == [
        name for name, _ in glue_table.columns]
    assert set(types) >= set(partitions)
    for name, glue_type in (*glue_table.columns, *glue_table.partition_keys):
        assert types[name].startswith(COMPATIBLE[glue_type]), (name, glue_type, types[name])
    assert types["details"].startswith("STRUCT(")  # an object in the file


def test_the_view_reads_the_declared_types(
    con: duckdb.DuckDBPyConnection, glue_table: GlueTable
) -> None:
    described = con.execute(f"DESCRIBE {glue_table.name}").fetchall()
    declared = [(name, DUCKDB_TYPES[t])
                for name, t in (*glue_table.columns, *glue_table.partition_keys)]
    assert sorted((row[0], row[1]) for row in described) == sorted(declared)


def test_details_read_as_json_text_that_json_functions_take(
    con: duckdb.DuckDBPyConnection, glue_table: GlueTable
) -> None:
    rows = con.execute(
        f"SELECT DISTINCT event_id, json_type(details), "
        f"json_extract_string(details, '$.limits[0].name'), "
        f"json_extract_string(details, '$.reason') FROM {glue_table.name} ORDER BY event_id"
    ).fetchall()
    assert rows == [(e.event_id, "OBJECT", "rpm",
                     f"{e.action} by {e.principal.rsplit('/')[-1]}") for e in EVENTS]


def test_partition_columns_are_each_events_own_day(
    con: duckdb.DuckDBPyConnection, glue_table: GlueTable
) -> None:
    rows = con.execute(f"SELECT DISTINCT event_id, year, month, day FROM {glue_table.name} "
                       "ORDER BY event_id").fetchall()
    assert rows == [(e.event_id, *e.day) for e in EVENTS]


# --- one batch across midnight -------------------------------------------------------


def test_a_batch_across_midnight_writes_one_object_per_day(aws: LocalAws) -> None:
    table, stream = aws.create_table("midnight")
    bucket = aws.create_bucket()
    before, after = EVENTS[1], EVENTS[3]  # 2025-03-14T23:59:59Z, 2025-03-15T00:00:00Z
    for event in (before, after):
        image = event.image()
        aws.ddb.put_item(TableName=table, Item=image)
        aws.ddb.delete_item(TableName=table, Key={"PK": image["PK"], "SK": image["SK"]})
    report = aws.drain(stream, AggregatorConfig(table_name=table, archive_bucket_name=bucket,
                                                enable_refill=False))
    assert report.invocations == 1
    objects = aws.objects(bucket)
    by_folder = {key.rsplit("/", 1)[0]: [json.loads(line)["event_id"] for line in
                                         gzip.decompress(body).splitlines()]
                 for key, body in objects.items()}
    assert by_folder == {"audit/year=2025/month=03/day=14": [before.event_id],
                         "audit/year=2025/month=03/day=15": [after.event_id]}
