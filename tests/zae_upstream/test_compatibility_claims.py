"""The README's "zae-limiter compatibility" section says what is true: the release and
schema it names are the ones the code knows and the tests install, the number of ported
upstream tests is the number in this folder, and every metric and variable it names exists."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

from aggregator.config import ENV_NAMES
from aggregator.metrics import COUNTS
from aggregator.schema import KNOWN_SCHEMA_VERSION, TESTED_ZAE_LIMITER

ROOT = Path(__file__).resolve().parents[2]
PORTS = Path(__file__).resolve().parent
UPSTREAM_NAMES = {"UpdateExpression"}
"""CamelCase names in the section that are zae-limiter's, not our metrics."""


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## zae-limiter compatibility")
    return text[start:text.index("\n## ", start + 1)]


def test_the_named_release_and_schema_are_the_ones_the_code_and_the_tests_use() -> None:
    from zae_limiter.version import CURRENT_SCHEMA_VERSION  # noqa: PLC0415 - dev-only dep

    section = _section()
    tested = re.search(r"Tested against zae-limiter (\S+)\*\* \(table schema (\S+?);", section)
    assert tested is not None
    assert tested.groups() == (TESTED_ZAE_LIMITER, KNOWN_SCHEMA_VERSION)
    assert version("zae-limiter") == TESTED_ZAE_LIMITER
    assert CURRENT_SCHEMA_VERSION == KNOWN_SCHEMA_VERSION


def test_the_ported_count_is_the_number_of_ports_in_this_folder() -> None:
    ports = sum(path.read_text().count('"""Upstream: ')
                for path in PORTS.glob("test_*.py") if path.name != Path(__file__).name)
    claimed = re.search(r"(\d+) upstream tests ported, all passing", _section())
    assert claimed is not None
    assert int(claimed.group(1)) == ports


def test_every_metric_and_variable_the_section_names_exists() -> None:
    section = _section()
    metrics = set(re.findall(r"`([A-Z][a-z]+(?:[A-Z][a-z]+)+)`", section)) - UPSTREAM_NAMES
    assert {"RefillsFailed", "ShardsDoubled", "UnknownSchemaVersions"} <= metrics
    assert metrics <= set(COUNTS), metrics - set(COUNTS)
    variables = set(re.findall(r"`([A-Z][A-Z_]+[A-Z])`", section))
    assert {"TABLE_NAME", "SNAPSHOT_WINDOWS", "ARCHIVE_BUCKET_NAME"} <= variables
    assert variables <= set(ENV_NAMES.values()), variables - set(ENV_NAMES.values())
