"""The benchmarks still run and still write their JSON shape (quick mode: no speed claims),
every pipeline's figures among them, and the README's table lists exactly what they write.

One quick run serves every test here (it stages the Lambda asset and starts moto's server
and the local endpoint in processes of their own): the lane stays at one run.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"name", "value", "unit", "goal", "meets_goal", "baseline_ratio"}
FIGURES = {
    "decode_aggregate_throughput", "batch_cpu_throughput", "snapshot_requests_per_item",
    "refill_requests_per_bucket_max", "write_requests_per_record", "batch_wall_time",
    "shard_lane_throughput", "batch_wall_time_over_http", "shard_lane_throughput_over_http",
    "cold_start_import", "lambda_asset_zipped", "vendored_packages",
    "peak_rss_increase", "archive_puts_per_partition", "archive_gzip_ratio",
    "archive_bytes_per_record", "dynamodb_wru_per_million_records", "cost_per_million_records",
    "throttled_write_requests_per_record", "throttled_write_requests_per_record_no_retry",
    "throttled_batches_given_up", "throttled_batches_given_up_no_retry",
    "throttled_results_off_truth", "heavy_throttled_write_requests_per_record",
    "heavy_throttled_batches_given_up", "heavy_throttled_batches_given_up_no_retry",
}
PIPELINES = {"events": "record", "projection": "record", "bundles": "object"}
"""Each sibling pipeline and what it counts per request."""


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, dict[str, Any]]]:
    """``python -m bench --quick``: its stdout and its figures by name."""
    out = tmp_path_factory.mktemp("bench") / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert isinstance(figures, list)
    return done.stdout, {figure["name"]: figure for figure in figures}


def test_quick_mode_prints_the_table_and_writes_every_figure(
        quick: tuple[str, dict[str, dict[str, Any]]]) -> None:
    stdout, figures = quick
    assert "| figure" in stdout
    assert set(figures) >= FIGURES
    for figure in figures.values():
        assert set(figure) == KEYS, figure
        assert isinstance(figure["value"], int | float), figure
        assert isinstance(figure["unit"], str), figure
        assert figure["unit"], figure
        if figure["goal"] is None:
            assert figure["meets_goal"] is None, figure
        else:
            assert isinstance(figure["goal"], str), figure
            assert isinstance(figure["meets_goal"], bool), figure
        assert figure["baseline_ratio"] is None or figure["baseline_ratio"] > 0, figure


def test_every_pipeline_is_measured_against_its_baseline_and_stays_exact(
        quick: tuple[str, dict[str, dict[str, Any]]]) -> None:
    """Throughput, writes and batch time over HTTP for each sibling pipeline, each with a
    baseline ratio; at any size, what they wrote matches the ground truth."""
    stdout, figures = quick
    for pipeline, unit in PIPELINES.items():
        for name in (f"{pipeline}_throughput_over_http",
                     f"{pipeline}_write_requests_per_{unit}",
                     f"{pipeline}_batch_wall_time_over_http", f"{pipeline}_batch_cpu_time"):
            assert figures[name]["baseline_ratio"] is not None, name
        assert figures[f"{pipeline}_results_off_truth"]["value"] == 0
        assert figures[f"{pipeline}_results_off_truth"]["meets_goal"] is True
    # Seed 003's own claims, measured directly.
    assert figures["events_batch_of_100_wall_time_at_10ms_slowest"]["goal"] == "<= 1,000"
    assert figures["events_error_rate"]["value"] == 0
    assert "Event metrics (seed 003)" in stdout
    assert "Bundles (seed 001)" in stdout


def _readme_table() -> dict[str, str]:
    """The README's Performance table: figure name -> unit."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Performance"):]
    lines = section[section.index("| figure"):].splitlines()
    rows: dict[str, str] = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[2]
    return rows


def test_the_readme_table_lists_every_figure_with_its_unit(
        quick: tuple[str, dict[str, dict[str, Any]]]) -> None:
    _, figures = quick
    assert _readme_table() == {name: figure["unit"] for name, figure in figures.items()}
