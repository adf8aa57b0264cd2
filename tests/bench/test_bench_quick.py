"""The benchmarks still run and still write their JSON shape (quick mode: no speed claims)."""

import json
import subprocess
import sys
from pathlib import Path

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


def test_quick_mode_prints_the_table_and_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| figure" in done.stdout
    figures = json.loads(out.read_text())
    assert isinstance(figures, list)
    assert {f["name"] for f in figures} >= FIGURES
    for figure in figures:
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
