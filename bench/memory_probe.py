"""Runs inside a fresh interpreter (see ``footprint.peak_memory``): one batch, its peak RSS."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
from pathlib import Path
from typing import Any

from aggregator.config import AggregatorConfig
from aggregator.handler import build_runtime, handle
from streamagg_engine.clients import sdk_config

from .fakes import answering_client
from .throughput import now_after


def _status_kb(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (its high-water mark) from /proc, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark (Linux 4.0+); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def probe(batch_path: str) -> dict[str, Any]:
    config = AggregatorConfig(archive_bucket_name="archive", log_level="WARNING")
    sdk = sdk_config(config.max_workers)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        runtime = build_runtime(config.to_env(), dynamodb=answering_client("dynamodb", config=sdk),
                                s3=answering_client("s3", config=sdk))
        records = json.loads(Path(batch_path).read_text())
        warm = records[:100]
        handle({"Records": warm}, runtime, now_ms=now_after(warm))
        gc.collect()
        reset = _reset_peak()
        before_kb = _status_kb("VmRSS")
        handle({"Records": records}, runtime, now_ms=now_after(records))
        # Not getrusage's ru_maxrss: after a (v)fork + exec it also carries the parent's
        # peak. VmHWM is the same kernel high-water mark, for this process's memory only.
        peak_kb = _status_kb("VmHWM") if reset else resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss
        runtime.pool.shutdown(wait=True)
    return {"records": len(records), "before_kb": before_kb, "peak_kb": peak_kb,
            "increase_kb": max(0, peak_kb - before_kb), "peak_reset": reset}
