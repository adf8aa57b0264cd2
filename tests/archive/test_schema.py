"""The archive schema is written down once and agrees everywhere it appears.

``ARCHIVE_COLUMNS`` (the Glue table's columns), the lines ``aggregator.archiver`` writes and
the table in ``docs/archive.md`` name the same fields in the same order.
"""

from __future__ import annotations

import re

from aggregator.archiver import extract_line
from infra.archive_catalog import ARCHIVE_COLUMNS, PARTITION_KEYS
from streamagg_engine.records import parse_record
from tests.factories import audit_image, audit_removal

from .support import REPO

DOCS = REPO / "docs" / "archive.md"


def test_an_archived_line_has_exactly_the_catalogs_columns_in_order() -> None:
    for removal in (audit_removal(), audit_removal(audit_image(details={"M": {}}), ttl=False)):
        line = extract_line(parse_record(removal)).line
        assert list(line) == [c.name for c in ARCHIVE_COLUMNS]


def test_partition_keys_are_not_line_fields() -> None:
    assert not {k.name for k in PARTITION_KEYS} & {c.name for c in ARCHIVE_COLUMNS}


def test_the_docs_table_lists_the_catalogs_columns_and_types() -> None:
    text = DOCS.read_text()
    table = text.split("<!-- archive-columns -->", 1)[1].split("<!-- /archive-columns -->")[0]
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \|", table, re.MULTILINE)
    assert rows == [(c.name, c.type) for c in ARCHIVE_COLUMNS]
