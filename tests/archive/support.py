"""The archive's Glue table as DuckDB sees it, and the README's example queries.

DuckDB stands in for Athena: :func:`create_view` builds a view named like the Glue table
from the *synthesized* ``AWS::Glue::Table`` (its columns, partition keys and
``storage.location.template``), over archive objects downloaded with their S3 keys. The
README's queries then run on it unchanged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

DUCKDB_TYPES = {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT",
                "boolean": "BOOLEAN", "double": "DOUBLE"}
"""Glue (Hive) column type -> the DuckDB type that reads the same JSON value the same way."""

_SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.MULTILINE | re.DOTALL)
_MARKER = re.compile(r"-- query: ([a-z0-9-]+)\n")
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True)
class GlueTable:
    """What the synthesized ``AWS::Glue::Table`` declares."""

    name: str
    columns: tuple[tuple[str, str], ...]
    partition_keys: tuple[tuple[str, str], ...]
    parameters: dict[str, Any]
    serde: str
    location_template: str
    """``storage.location.template`` with the bucket written as ``{bucket}``."""

    @staticmethod
    def from_template(template: dict[str, Any]) -> GlueTable:
        (resource,) = (r for r in template["Resources"].values()
                       if r["Type"] == "AWS::Glue::Table")
        table = resource["Properties"]["TableInput"]
        storage = table["StorageDescriptor"]
        return GlueTable(
            name=table["Name"],
            columns=tuple((c["Name"], c["Type"]) for c in storage["Columns"]),
            partition_keys=tuple((k["Name"], k["Type"]) for k in table["PartitionKeys"]),
            parameters=table["Parameters"],
            serde=storage["SerdeInfo"]["SerializationLibrary"],
            location_template=_join(table["Parameters"]["storage.location.template"]),
        )

    def local_glob(self, root: Path) -> str:
        """The template's partitions as a glob under ``root`` (the bucket's copy)."""
        local = self.location_template.replace("s3://{bucket}/", f"{root}/")
        return _PLACEHOLDER.sub("*", local) + "*"


def _join(value: Any) -> str:
    """A ``Fn::Join`` of strings and one bucket reference, as text with ``{bucket}``."""
    if isinstance(value, str):
        return value
    separator, parts = value["Fn::Join"]
    return str(separator).join(p if isinstance(p, str) else "{bucket}" for p in parts)


def download(objects: dict[str, bytes], root: Path) -> list[Path]:
    """Write each object under ``root`` at its key (``audit/year=.../x.jsonl.gz``)."""
    written = []
    for key, body in objects.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        written.append(path)
    return written


def read_json_call(table: GlueTable, root: Path, *, declared: bool = True) -> str:
    """DuckDB's ``read_json`` over the local copy, Hive partitions from the folder names.

    ``declared``: the columns and partition types the Glue table declares (what Athena
    reads); otherwise DuckDB detects the columns' types from the data itself.
    """
    options = ["format = 'newline_delimited'", "hive_partitioning = true"]
    hive_types = ", ".join(f"'{n}': '{DUCKDB_TYPES[t]}'" for n, t in table.partition_keys)
    options.append(f"hive_types = {{{hive_types}}}")
    if declared:
        columns = ", ".join(f"'{n}': '{DUCKDB_TYPES[t]}'" for n, t in table.columns)
        options.append(f"columns = {{{columns}}}")
    else:
        options.append("maximum_depth = 2")  # `details` shows as an object, not its keys
    return f"read_json('{table.local_glob(root)}', {', '.join(options)})"


def create_view(con: duckdb.DuckDBPyConnection, table: GlueTable, root: Path) -> None:
    """``CREATE VIEW <glue table name>``: the README's queries then run unchanged."""
    con.execute(f"CREATE OR REPLACE VIEW {table.name} AS "
                f"SELECT * FROM {read_json_call(table, root)}")


def readme_queries(text: str | None = None) -> dict[str, str]:
    """Every fenced ``sql`` block of the README that starts with ``-- query: <name>``."""
    found: dict[str, str] = {}
    for block in _SQL_BLOCK.findall(README.read_text() if text is None else text):
        marker = _MARKER.match(block)
        if marker is None:
            continue
        name = marker.group(1)
        if name in found:
            raise ValueError(f"README has two queries named {name!r}")
        found[name] = block
    return found


def as_markdown(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """A result as a Markdown table (what the test prints, ready to paste)."""
    def cell(value: Any) -> str:
        return "NULL" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def load_template(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result
