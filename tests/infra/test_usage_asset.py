"""The usage function's asset: zae-limiter's bucket maintenance, importable on Lambda's own.

CDK stages the asset (local bundling from the installed distributions: no network, no
Docker); a fresh interpreter whose path is only that asset and the packages Lambda's
Python runtime provides (boto3 and its dependencies) must import the handler and
upstream's processor without any of zae-limiter's heavy dependencies.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from infra import lambda_code
from infra.lambda_code import ZAE_LIMITER_VERSION, asset_code, vendored_files

RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
"""What Lambda's Python runtime puts beside the asset: boto3 and what it imports."""


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("usage-asset.out")
    app = App(outdir=str(outdir))
    stack = Stack(app, "Usage")
    handler = "aggregator.handler.handler"
    lambda_.Function(stack, "Usage", handler=handler, code=asset_code(handler),
                     runtime=lambda_.Runtime.PYTHON_3_13)
    app.synth()
    manifest = json.loads((outdir / "Usage.assets.json").read_text())["files"]
    (source,) = [a["source"]["path"] for a in manifest.values()
                 if a["source"]["path"].startswith("asset.")]
    return outdir / str(source)


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only boto3 and its dependencies (links to the installed ones)."""
    folder = tmp_path_factory.mktemp("lambda-runtime")
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None, name
        assert spec.origin is not None, name
        origin = Path(spec.origin)
        target = origin.parent if origin.name == "__init__.py" else origin
        (folder / target.name).symlink_to(target)
    return folder


def _run_isolated(code: str, *path: Path) -> dict[str, Any]:
    """``code`` in ``python -I -S`` (no site-packages, no environment) with ``path`` only."""
    prelude = f"import sys; sys.path[:0] = {[str(p) for p in path]!r}\n"
    out = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", prelude + code],
                         capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def test_upstreams_processor_and_our_handler_import_from_the_asset_and_boto3_alone(
    staged: Path, runtime_dir: Path,
) -> None:
    found = _run_isolated(
        "import json, zae_limiter, zae_limiter_aggregator.processor, aggregator.handler\n"
        "print(json.dumps({'zae_limiter': zae_limiter.__file__,\n"
        "    'modules': sorted({m.split('.')[0] for m in sys.modules})}))",
        staged, runtime_dir)
    assert Path(found["zae_limiter"]).parent == staged / "zae_limiter"
    assert {"cronsim", "zae_limiter_aggregator", "aggregator"} <= set(found["modules"])
    assert not {"aiobotocore", "aiohttp", "click", "aws_lambda_builders", "yaml",
                "questionary", "ulid"} & set(found["modules"])


def test_a_scheduled_limits_time_zone_resolves_from_the_assets_tzdata(
    staged: Path, runtime_dir: Path,
) -> None:
    found = _run_isolated(
        "import json, zoneinfo\n"
        "zoneinfo.reset_tzpath(to=[])  # no system zone files, as on a minimal image\n"
        "from zae_limiter.schedule import decode\n"
        "zone = zoneinfo.ZoneInfo('Europe/Paris')\n"
        "print(json.dumps({'key': zone.key}))",
        staged, runtime_dir)
    assert found == {"key": "Europe/Paris"}


def test_zae_limiters_package_is_an_empty_init_and_the_pure_modules_only(staged: Path) -> None:
    assert (staged / "zae_limiter" / "__init__.py").read_text() == ""
    assert sorted(p.name for p in (staged / "zae_limiter").iterdir()) == [
        "__init__.py", "bucket.py", "exceptions.py", "models.py", "schedule.py", "schema.py"]


def test_every_vendored_file_is_the_installed_distributions_and_licenses_come_along(
    staged: Path,
) -> None:
    for relative, source in vendored_files().items():
        assert (staged / relative).read_bytes() == source.read_bytes(), relative
    licenses = {p.relative_to(staged).parts[0] for p in staged.glob("*.dist-info/licenses/*")}
    assert licenses == {f"zae_limiter-{ZAE_LIMITER_VERSION}.dist-info",
                        f"cronsim-{importlib.metadata.version('cronsim')}.dist-info",
                        f"tzdata-{importlib.metadata.version('tzdata')}.dist-info"}
    assert not list(staged.rglob("__pycache__"))


class _Dist:
    def __init__(self, version: str) -> None:
        self.version = version
        self.files: list[Any] = []


def test_another_zae_limiter_release_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: _Dist("0.18.0"))
    with pytest.raises(RuntimeError, match=r"zae-limiter 0\.18\.0 is installed; .* 0\.17\.0 only"):
        vendored_files()


def test_a_missing_distribution_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(RuntimeError, match=r"needs 'zae-limiter' installed .* requirements"):
        vendored_files()


def test_the_bundler_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "left-over.py").write_text("")
    with pytest.raises(RuntimeError, match="not empty"):
        lambda_code.build_usage_asset(tmp_path)
