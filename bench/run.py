"""``make bench``: measure every figure against the naive baseline, print a table, write JSON.

The usage aggregator's figures come first (this module's :func:`run`); then the event
metrics, projection and bundler pipelines over HTTP to moto (:func:`_pipelines`).

    python -m bench                # the standard run (five to eight minutes on 2 cores)
    python -m bench --quick        # tiny sizes: checks the benchmarks work, figures meaningless
    python -m bench --out FILE     # where the JSON goes (default bench/results.json)

Progress goes to stderr; the table (Markdown) and the deployment figures to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from aggregator.config import AggregatorConfig

from . import (
    bundles,
    events,
    footprint,
    latency,
    moto_process,
    projection,
    throttling,
    throughput,
    writes,
)
from .figures import Figure, Goal, machine, table, write_json
from .workload import SEED, generate

DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"
FULL_VCPU_MB = 1_769
"""Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB."""
MEMORY_MB = FULL_VCPU_MB
"""The construct's default memory size."""
SMALL_MEMORY_MB = 512
"""A common Lambda size, for comparison: a third of a vCPU."""
LAMBDA_GB_S_USD = 0.0000133334
LAMBDA_REQUEST_USD = 0.20 / 1_000_000
DYNAMODB_WRU_USD = 0.625 / 1_000_000
S3_PUT_USD = 0.005 / 1_000
PRICES = ("AWS list prices, us-east-1, as assumed here: Lambda arm64 $0.0000133334 per GB-s "
          "and $0.20 per 1M requests; DynamoDB on-demand $0.625 per million write request "
          "units; S3 Standard $0.005 per 1,000 PUT requests")


@dataclass(frozen=True)
class Sizes:
    batches: int
    batch_size: int
    latency_s: float
    repeat: int
    memory_records: int
    cold_runs: int
    throttled_records: int
    """Records of each throttling scenario (batches of 100, as the construct's mapping)."""
    events: int
    """Kinesis records through the event pipeline (batches of 100)."""
    projection_records: int
    """Stream records through the projection (batches of 100)."""
    bundle_objects: int
    """Objects (one message each) through the bundler (batches of 10)."""


STANDARD = Sizes(batches=10, batch_size=1_000, latency_s=0.010, repeat=3,
                 memory_records=10_000, cold_runs=7, throttled_records=5_000,
                 events=500, projection_records=1_000, bundle_objects=100)
QUICK = Sizes(batches=2, batch_size=50, latency_s=0.001, repeat=1, memory_records=200,
              cold_runs=1, throttled_records=300, events=20, projection_records=30,
              bundle_objects=10)
THROTTLED = (0.20, 0.05)
"""Shares of writes refused and of responses lost in the throttling figures."""
HEAVY = (0.30, 0.10, 0.10, 59)
"""Refused, lost, batches redelivered and retries per batch (60 deliveries) in the heavy case."""


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else STANDARD
    figures, notes = run(sizes)
    host = machine()
    print(f"Machine: {host['nproc']} CPUs ({host['cpu']}), Python {host['python']} "
          f"({host['implementation']}), {host['platform']}")
    print(f"Workload: {sizes.batches} batches x {sizes.batch_size} records, seed {SEED}; "
          f"AWS latency "
          f"{sizes.latency_s * 1000:g} ms per call" + ("  [--quick: not figures]"
                                                     if args.quick else ""))
    print()
    print(table(figures))
    print()
    print("\n".join(notes))
    write_json(args.out, figures)
    progress(f"wrote {args.out}")
    return 0


def run(sizes: Sizes) -> tuple[list[Figure], list[str]]:
    """Every figure, and the notes (item sizes, cost breakdown) printed under the table."""
    started = time.perf_counter()
    progress(f"generating the workload ({sizes.batches} x {sizes.batch_size} records)")
    workload = generate(batches=sizes.batches, batch_size=sizes.batch_size)
    texts = [json.dumps(batch) for batch in workload.batches]
    batches = [json.loads(text) for text in texts]  # as Lambda delivers them
    config = AggregatorConfig(archive_bucket_name="archive")
    figures: list[Figure] = []

    progress("asset size (stages the Lambda asset through the construct)")
    asset = footprint.asset()
    progress(f"cold start ({sizes.cold_runs} fresh interpreters each)")
    cold = footprint.cold_start(sizes.cold_runs)

    progress(f"decode + aggregate throughput, CPU time (best of {sizes.repeat} per batch)")
    ours = throughput.ours(texts, config, repeat=sizes.repeat)
    naive = throughput.baseline(texts, repeat=sizes.repeat)
    no_refill = throughput.ours(texts, AggregatorConfig(archive_bucket_name="archive",
                                                        enable_refill=False),
                                repeat=sizes.repeat)
    progress("whole-batch CPU throughput (requests built too)")
    whole = throughput.ours(texts, config, repeat=sizes.repeat, build_requests=True)
    naive_whole = throughput.baseline(texts, repeat=sizes.repeat, build_requests=True)
    figures += [
        Figure("decode_aggregate_throughput", ours.per_second, "records/s",
               Goal(">=", 150_000, min_ratio=8), ours.per_second / naive.per_second),
        Figure("decode_aggregate_throughput_refill_off", no_refill.per_second, "records/s"),
        Figure("batch_cpu_throughput", whole.per_second, "records/s", None,
               whole.per_second / naive_whole.per_second),
    ]

    progress("write requests against their floor")
    counts = writes.measure(batches, config)
    figures += [
        Figure("snapshot_requests_per_item", counts.snapshot_requests / counts.snapshot_items,
               "requests/item", Goal("==", 1.0),
               counts.baseline_snapshot_requests / counts.snapshot_requests),
        Figure("refill_requests_per_bucket_max", counts.max_refills_per_bucket,
               "requests/bucket/batch", Goal("<=", 1)),
        Figure("write_requests_per_record", counts.requests / counts.records, "requests/record",
               None, counts.baseline_requests / counts.requests),
    ]

    progress(f"batch wall time, {sizes.latency_s * 1000:g} ms per AWS call")
    batch = batches[0]
    default = latency.ours(batch, latency_s=sizes.latency_s,
                           max_workers=config.max_workers, repeat=sizes.repeat)
    narrow = latency.ours(batch, latency_s=sizes.latency_s, max_workers=16, repeat=sizes.repeat)
    progress(f"batch wall time over HTTP to a local endpoint answering after "
             f"{sizes.latency_s * 1000:g} ms")
    http = latency.ours_over_http(batch, latency_s=sizes.latency_s,
                                  max_workers=config.max_workers, repeat=sizes.repeat)
    progress("batch wall time, our requests one at a time (max_workers=1)")
    serial = latency.ours(batch, latency_s=sizes.latency_s, max_workers=1, repeat=1)
    progress(f"batch wall time, the naive baseline (~{counts.baseline_requests // sizes.batches}"
             f" sequential calls)")
    slow = latency.baseline(batch, latency_s=sizes.latency_s)
    for suffix, timing in (("", default), ("_over_http", http)):
        figures.append(Figure(f"batch_wall_time{suffix}", timing.seconds * 1000, "ms",
                              Goal("<=", 300, min_ratio=10), slow.seconds / timing.seconds))
        figures.append(Figure(f"shard_lane_throughput{suffix}", timing.records_per_second,
                              "records/s", Goal(">=", 4_000),
                              slow.seconds / timing.seconds))
    figures.append(Figure("batch_wall_time_16_workers", narrow.seconds * 1000, "ms", None,
                          slow.seconds / narrow.seconds))
    figures.append(Figure("batch_wall_time_sequential_writes", serial.seconds * 1000, "ms",
                          None, slow.seconds / serial.seconds))
    figures.append(Figure("batch_cpu_time", default.cpu_seconds * 1000, "ms CPU", None,
                          slow.cpu_seconds / default.cpu_seconds))
    figures.append(Figure("batch_cpu_time_over_http", http.cpu_seconds * 1000, "ms CPU"))
    for memory_mb in (SMALL_MEMORY_MB, MEMORY_MB):
        figures.append(Figure(f"shard_lane_throughput_at_{memory_mb}mb",
                              http.records / lambda_seconds(http, memory_mb), "records/s", None,
                              lambda_seconds(slow, memory_mb) / lambda_seconds(http, memory_mb)))

    figures += [
        Figure("cold_start_import", cold.handler_ms, "ms", Goal("<=", 30)),
        Figure("cold_start_import_with_boto3", cold.with_boto3_ms, "ms"),
        # zae-limiter's bucket maintenance is vendored on purpose (infra/lambda_code.py):
        # its four packages, tzdata's zone files most of the bytes.
        Figure("lambda_asset_zipped", asset.zipped_bytes / 1024, "KiB", Goal("<=", 600)),
        Figure("vendored_packages", len(asset.vendored), "packages", Goal("==", 4)),
    ]

    progress(f"peak memory of one {sizes.memory_records:,}-record batch (fresh interpreter)")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        path = Path(tmp) / "batch.json"
        big = generate(batches=1, batch_size=sizes.memory_records)
        path.write_text(json.dumps(big.batches[0]))
        del big
        memory = footprint.peak_memory(path)
    progress(f"peak memory: {memory}")
    figures.append(Figure("peak_rss_increase", memory["increase_kb"] / 1024, "MiB",
                          Goal("<=", 64)))

    figures += [
        Figure("archive_puts_per_partition", counts.puts / max(1, counts.partitions),
               "PUTs/partition", Goal("==", 1.0)),
        Figure("archive_puts_per_batch", counts.puts / counts.batches, "PUTs/batch"),
        Figure("archive_gzip_ratio", counts.jsonl_bytes / max(1, counts.gzip_bytes), "x"),
        Figure("archive_bytes_per_record", counts.gzip_bytes / max(1, counts.archived_records),
               "bytes/record"),
    ]

    # Costs from the batch signed and sent over HTTP: the CPU a real call spends.
    deployment, notes = _deployment(counts, http, slow)
    figures += deployment
    notes.insert(0, f"Per batch: {counts.snapshot_items / counts.batches:,.0f} snapshot items "
                 f"({counts.snapshot_requests / counts.batches:,.0f} UpdateItem), "
                 f"{counts.buckets / counts.batches:,.0f} buckets "
                 f"({counts.refill_requests / counts.batches:,.1f} refills), "
                 f"{counts.partitions / counts.batches:.1f} archive partitions "
                 f"({counts.puts / counts.batches:.1f} PUTs); the baseline sends "
                 f"{counts.baseline_requests / counts.batches:,.0f} requests.")
    notes.append(f"Batch of {default.records:,} records at {sizes.latency_s * 1000:g} ms per "
                 f"call: {default.calls:,} calls, {default.seconds * 1000:,.0f} ms wall and "
                 f"{default.cpu_seconds * 1000:,.0f} ms CPU with max_workers="
                 f"{config.max_workers}; {narrow.seconds * 1000:,.0f} ms wall with 16; "
                 f"signed and sent over HTTP {http.calls:,} calls, "
                 f"{http.seconds * 1000:,.0f} ms wall and {http.cpu_seconds * 1000:,.0f} ms CPU "
                 f"({http.cpu_seconds / max(1, http.calls) * 1e6:,.0f} µs per call against "
                 f"{default.cpu_seconds / max(1, default.calls) * 1e6:,.0f} µs unsent); "
                 f"baseline {slow.calls:,} calls, {slow.seconds:,.1f} s.")
    notes.append(f"Peak memory: {memory['increase_kb'] / 1024:,.1f} MiB over the "
                 f"{memory['before_kb'] / 1024:,.0f} MiB resident before the batch (runtime, "
                 f"clients and the parsed {sizes.memory_records:,}-record event).")

    throttled, throttled_notes = _throttling(sizes)
    figures += throttled
    notes += throttled_notes
    siblings, sibling_notes = _pipelines(sizes)
    figures += siblings
    notes += sibling_notes
    progress(f"done in {time.perf_counter() - started:.0f} s")
    return figures, notes


def _pipelines(sizes: Sizes) -> tuple[list[Figure], list[str]]:
    """The event metrics, projection and bundler pipelines over HTTP, each against its
    seed's naive processor (:mod:`bench.pipelines`)."""
    progress("starting moto's server in its own process for the other pipelines")
    with moto_process.running() as url:
        measured_events = events.measure(url, sizes.events, progress)
        measured_projection = projection.measure(url, sizes.projection_records, progress)
        measured_bundles = bundles.measure(url, sizes.bundle_objects, progress)
    figures = [*events.figures(measured_events), *projection.figures(measured_projection),
               *bundles.figures(measured_bundles)]
    notes = [events.note(measured_events), projection.note(measured_projection),
             bundles.note(measured_bundles)]
    return figures, notes


def _throttling(sizes: Sizes) -> tuple[list[Figure], list[str]]:
    """Write requests per record, batches given up and exactness under refused writes,
    without and with the engine's in-invocation retries (:mod:`bench.throttling`)."""
    refused, lost = THROTTLED
    steady = throttling.Scenario(refused, lost, sizes.throttled_records)
    progress(f"throttling: {steady.describe()}, without and with in-invocation retries")
    before, after = throttling.compare_policies(steady)
    heavy_refused, heavy_lost, redelivered, retries = HEAVY
    heavy = throttling.Scenario(heavy_refused, heavy_lost, min(sizes.throttled_records, 2_000),
                                redelivered=redelivered, retry_attempts=retries)
    progress(f"throttling: {heavy.describe()}, without and with in-invocation retries")
    heavy_before, heavy_after = throttling.compare_policies(heavy)
    figures = [
        Figure("throttled_write_requests_per_record", after.requests_per_record,
               "requests/record", Goal("<=", 3)),
        Figure("throttled_write_requests_per_record_no_retry", before.requests_per_record,
               "requests/record"),
        Figure("throttled_batches_given_up", after.given_up, "batches", Goal("==", 0)),
        Figure("throttled_batches_given_up_no_retry", before.given_up, "batches"),
        Figure("throttled_results_off_truth", after.off_truth, "items", Goal("==", 0)),
        Figure("heavy_throttled_write_requests_per_record", heavy_after.requests_per_record,
               "requests/record"),
        Figure("heavy_throttled_batches_given_up", heavy_after.given_up, "batches",
               Goal("==", 0)),
        Figure("heavy_throttled_batches_given_up_no_retry", heavy_before.given_up, "batches"),
    ]
    notes = [f"Throttling ({steady.describe()}): without in-invocation retries "
             f"{before.describe()}; with them {after.describe()}.",
             f"Heavy throttling ({heavy.describe()}): without in-invocation retries "
             f"{heavy_before.describe()}; with them {heavy_after.describe()}."]
    return figures, notes


def lambda_seconds(timing: latency.Timing, memory_mb: int = MEMORY_MB) -> float:
    """A batch's duration on a Lambda of ``memory_mb``: the measured wall time, or its CPU
    time stretched to the fraction of a vCPU that memory size gets, whichever is longer."""
    return max(timing.seconds, timing.cpu_seconds / min(1.0, memory_mb / FULL_VCPU_MB))


def _deployment(counts: writes.WriteCounts, ours: latency.Timing,
                naive: latency.Timing) -> tuple[list[Figure], list[str]]:
    """Per million records: DynamoDB write units and the cost of the whole path."""
    per_million = 1_000_000 / counts.records
    wru = (counts.snapshot_requests * counts.wcu_per_snapshot_write
           + counts.refill_requests * counts.wcu_per_refill) * per_million
    naive_wru = (counts.baseline_snapshot_requests * counts.wcu_per_snapshot_write
                 + counts.baseline_refill_requests * counts.wcu_per_refill) * per_million

    def cost(timing: latency.Timing, wru: float, puts: int) -> tuple[float, float, float]:
        invocations = 1_000_000 / timing.records
        lambda_usd = invocations * (lambda_seconds(timing) * MEMORY_MB / 1024 * LAMBDA_GB_S_USD
                                    + LAMBDA_REQUEST_USD)
        return lambda_usd, wru * DYNAMODB_WRU_USD, puts * per_million * S3_PUT_USD

    ours_usd = cost(ours, wru, counts.puts)
    naive_usd = cost(naive, naive_wru, counts.baseline_puts)
    notes = [
        f"Items: a snapshot item is at most ~{counts.snapshot_item_bytes:,.0f} bytes and a bucket "
        f"item ~{counts.bucket_item_bytes:,.0f} bytes, so each UpdateItem costs "
        f"{counts.wcu_per_snapshot_write} and {counts.wcu_per_refill} write unit(s).",
        f"Per million records at {MEMORY_MB} MB (a batch sent over HTTP takes "
        f"{lambda_seconds(ours) * 1000:,.0f} ms there: the larger of its wall time and its "
        f"CPU time over {MEMORY_MB}/{FULL_VCPU_MB} of a vCPU): Lambda ${ours_usd[0]:.4f}, "
        f"DynamoDB {wru:,.0f} WRU ${ours_usd[1]:.4f}, S3 ${ours_usd[2]:.4f}; total "
        f"${sum(ours_usd):.4f}. Baseline: Lambda ${naive_usd[0]:.4f}, DynamoDB "
        f"{naive_wru:,.0f} WRU ${naive_usd[1]:.4f}, S3 ${naive_usd[2]:.4f}; total "
        f"${sum(naive_usd):.4f}.",
        f"Prices: {PRICES}.",
    ]
    figures = [
        Figure("dynamodb_wru_per_million_records", wru, "WRU", None, naive_wru / wru),
        Figure("cost_per_million_records", sum(ours_usd), "USD", None,
               sum(naive_usd) / sum(ours_usd)),
    ]
    return figures, notes
