"""The layout's rules, checked: one engine, peer pipelines, one asset per function.

* No pipeline imports another pipeline's modules, and the engine imports no pipeline.
* Each function's asset (as CDK stages it) holds the engine and its own pipeline only.
* Every pipeline names the same roles with the same file names.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from infra.lambda_code import ENGINE, LAMBDA_ROOT, PIPELINES, asset_code, vendored_files

PACKAGES = (ENGINE, *PIPELINES)
ROLE_FILES = ("handler.py", "config.py", "pipeline.py", "processor.py", "stores.py",
              "metrics.py")
"""Entry point, settings, batch pipeline, pure planning, AWS adapters, metrics."""
ALLOWED_THIRD_PARTY = {"boto3", "botocore", "mypy_boto3_dynamodb", "mypy_boto3_s3"}
"""What the Lambda runtime provides (the ``mypy_boto3_*`` stubs only under TYPE_CHECKING)."""
VENDORED_IMPORTS = {"aggregator": {"zae_limiter", "zae_limiter_aggregator"}}
"""What a pipeline's own asset carries besides (``infra.lambda_code.VENDORED``)."""


def _imported_top_levels(path: Path) -> set[str]:
    """The top-level packages ``path`` imports absolutely (relative imports stay inside)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_lambda_root_holds_exactly_the_engine_and_the_pipelines() -> None:
    packages = {p.name for p in LAMBDA_ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_itself_the_engine_and_the_runtime(package: str) -> None:
    allowed = {package, ENGINE, *ALLOWED_THIRD_PARTY, *sys.stdlib_module_names,
               *VENDORED_IMPORTS.get(package, ())}
    for path in sorted((LAMBDA_ROOT / package).rglob("*.py")):
        imported = _imported_top_levels(path)
        if package == ENGINE:
            assert not imported & set(PIPELINES), f"{path}: the engine imports a pipeline"
        assert imported <= allowed, f"{path} imports {sorted(imported - allowed)}"


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_pipeline_names_its_roles_the_same_way(pipeline: str) -> None:
    missing = [name for name in ROLE_FILES if not (LAMBDA_ROOT / pipeline / name).is_file()]
    assert not missing, f"{pipeline} lacks {missing}"


def test_a_handler_outside_the_pipelines_is_refused() -> None:
    with pytest.raises(ValueError, match="handler must be <pipeline>"):
        asset_code("other.handler.handler")


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Each pipeline's function asset as CDK stages it: handler -> files in the asset."""
    outdir = tmp_path_factory.mktemp("assets.out")
    app = App(outdir=str(outdir))
    stack = Stack(app, "Assets")
    handlers = {f"{pipeline}.handler.handler": pipeline for pipeline in PIPELINES}
    for index, handler in enumerate(handlers):
        lambda_.Function(stack, f"F{index}", handler=handler, code=asset_code(handler),
                         runtime=lambda_.Runtime.PYTHON_3_13)
    app.synth()
    template = json.loads((outdir / "Assets.template.json").read_text())
    manifest = json.loads((outdir / "Assets.assets.json").read_text())["files"]
    found: dict[str, set[str]] = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        key = resource["Properties"]["Code"]["S3Key"]
        (source,) = (a["source"] for a in manifest.values()
                     if any(d["objectKey"] == key for d in a["destinations"].values()))
        folder = outdir / source["path"]
        found[resource["Properties"]["Handler"]] = {
            p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    return found


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_each_asset_holds_the_engine_and_its_own_pipeline_only(
    assets: dict[str, set[str]], pipeline: str,
) -> None:
    files = assets[f"{pipeline}.handler.handler"]
    expected = {
        p.relative_to(LAMBDA_ROOT).as_posix()
        for package in (ENGINE, pipeline)
        for p in (LAMBDA_ROOT / package).rglob("*.py") if "__pycache__" not in p.parts
    }
    if pipeline == "aggregator":  # and zae-limiter's bucket maintenance (test_usage_asset.py)
        expected |= {*vendored_files(), "zae_limiter/__init__.py"}
    assert files == expected
    assert f"{pipeline}/handler.py" in files


def test_each_pipeline_has_an_asset_of_its_own(assets: dict[str, set[str]]) -> None:
    """Distinct file sets, so distinct asset hashes: editing one pipeline redeploys only it."""
    assert len({frozenset(files) for files in assets.values()}) == len(PIPELINES)
