"""Cold start, Lambda asset size and peak memory, each measured in a fresh subprocess.

* Cold start: the time to ``import aggregator.handler`` in a new interpreter that has
  already imported ``boto3`` and the ``botocore`` modules the handler uses (the Lambda
  runtime provides them; their own import time is not ours), from the staged asset (so
  zae-limiter's modules are the asset's, never the full installed package) without
  ``__pycache__`` and with ``-B``, because Lambda's ``/var/task`` is read-only and every
  cold start compiles the sources. Best of ``runs`` (the machine may be busy with other
  work; the least disturbed run is the closest to the cost itself).
* Asset: the directory CDK stages for the aggregator's function
  (``infra.lambda_code.asset_code``: the engine, the usage pipeline and zae-limiter's
  bucket maintenance with what it imports, no other pipeline), zipped with deflate level
  9; and what it vendors besides our two packages.

``python -m bench.footprint`` prints the asset's and the cold start's figures alone.
* Memory: the peak resident set size of one invocation of the handler over a
  10,000-record batch, less the resident size just before it (the parsed event, which
  Lambda's runtime holds anyway, is in both). The kernel's RSS high-water mark is reset
  first (``/proc/self/clear_refs``) and read back as ``VmHWM`` from ``/proc/self/status``:
  the mark ``getrusage`` reports as ``ru_maxrss``, without the parent's peak that
  ``ru_maxrss`` inherits across (v)fork + exec. Clients and pool are warmed up by a small
  batch beforehand, as on a warm Lambda container.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_QUIET_JSII = {
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
}

_IMPORT = """
import time, boto3, boto3.dynamodb.types, boto3.dynamodb.transform, botocore.config
import botocore.exceptions
started = time.perf_counter()
import aggregator.handler
print(time.perf_counter() - started)
"""
_IMPORT_ALL = """
import time
started = time.perf_counter()
import aggregator.handler
print(time.perf_counter() - started)
"""


@dataclass(frozen=True)
class ColdStart:
    handler_ms: float
    """Our modules, with boto3/botocore already imported."""
    with_boto3_ms: float
    """Everything, boto3 included: what a cold start pays in total (for context)."""


@dataclass(frozen=True)
class Asset:
    zipped_bytes: int
    files: int
    vendored: list[str]
    """Top-level packages other than ours (``aggregator``, ``streamagg_engine``); the
    vendored distributions' license folders (``*.dist-info``) are not counted."""


def cold_start(runs: int = 7) -> ColdStart:
    staged = _staged()
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(staged), "PYTHONDONTWRITEBYTECODE": "1"}
        ours = [_seconds(_IMPORT, env, tmp) for _ in range(runs)]
        total = [_seconds(_IMPORT_ALL, env, tmp) for _ in range(runs)]
    return ColdStart(min(ours) * 1000, min(total) * 1000)


@functools.cache
def _staged() -> Path:
    """The usage function's asset, staged once per process (a synth takes ~20 s) into a
    folder removed when the process exits; the asset and the cold start both read it."""
    folder = tempfile.TemporaryDirectory(prefix="bench-asset-")
    atexit.register(folder.cleanup)
    return stage_asset(Path(folder.name) / "cdk.out")


def _seconds(code: str, env: dict[str, str], cwd: str) -> float:
    out = subprocess.run([sys.executable, "-B", "-c", code], env=env, cwd=cwd,
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def stage_asset(outdir: Path) -> Path:
    """Synthesize a stack holding only the usage function into ``outdir`` (a fresh
    interpreter, so no state of this one leaks in); the staged asset's directory."""
    env = {**os.environ, **_QUIET_JSII}
    out = subprocess.run([sys.executable, "-c", _STAGE_ASSET.format(outdir=str(outdir))],
                         env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return Path(out.strip().splitlines()[-1])


def asset() -> Asset:
    staged = _staged()
    with tempfile.TemporaryDirectory(prefix="bench-zip-") as tmp:
        files = sorted(p for p in staged.rglob("*") if p.is_file())
        archive = Path(tmp) / "asset.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED,
                             compresslevel=9) as zf:
            for path in files:
                zf.write(path, path.relative_to(staged).as_posix())
        size = archive.stat().st_size
    vendored = sorted({top for p in files if not (top := p.relative_to(staged).parts[0])
                       .endswith(".dist-info")} - {"aggregator", "streamagg_engine"})
    return Asset(size, len(files), vendored)


_STAGE_ASSET = """
from pathlib import Path
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from infra.lambda_code import asset_code
out = Path({outdir!r})
stack = Stack(App(outdir=str(out)), "Asset")
lambda_.Function(stack, "Usage", handler="aggregator.handler.handler",
                 code=asset_code("aggregator.handler.handler"),
                 runtime=lambda_.Runtime.PYTHON_3_13)
stack.node.root.synth()
(staged,) = (p for p in out.iterdir() if p.is_dir() and p.name.startswith("asset."))
print(staged)
"""


_MEMORY = """
import gc, json, resource, sys
sys.path[:0] = [{lambda_src!r}, {root!r}]
from bench.memory_probe import probe
print(json.dumps(probe({path!r})))
"""


def peak_memory(batch_path: Path) -> dict[str, Any]:
    """Run :func:`bench.memory_probe.probe` in a fresh interpreter; its JSON result."""
    code = _MEMORY.format(lambda_src=str(ROOT / "lambda_src"), root=str(ROOT),
                          path=str(batch_path))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    """The usage function's footprint alone: its asset and its cold import."""
    found = asset()
    cold = cold_start()
    print(f"usage asset: {found.zipped_bytes:,} bytes zipped, {found.files} files; vendored: "
          f"{', '.join(found.vendored) or 'nothing'}")
    print(f"cold import of aggregator.handler: {cold.handler_ms:.1f} ms with boto3 already "
          f"imported, {cold.with_boto3_ms:.1f} ms in all")


if __name__ == "__main__":
    main()
