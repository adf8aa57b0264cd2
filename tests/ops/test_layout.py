"""The redrive's layout: a small common core, one module per pipeline, none importing
another pipeline's module or another pipeline's Lambda package."""

from __future__ import annotations

import ast
from pathlib import Path

REDRIVE = Path(__file__).resolve().parents[2] / "redrive"
PIPELINES = {"usage": {"aggregator"}, "projection": {"streamagg_projection"},
             "events": {"streamagg_events"}, "bundles": set()}
"""A pipeline's redrive module -> the Lambda packages it may import."""
LAMBDA_PACKAGES = {"aggregator", "streamagg_projection", "streamagg_events",
                   "streamagg_bundles"}
OWNED = {"watermarks": "usage"}
"""Modules that belong to one pipeline's recovery."""


def imported(module: str) -> set[str]:
    """The modules ``redrive/<module>.py`` imports (redrive's own as ``redrive.<name>``)."""
    tree = ast.parse((REDRIVE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(f"redrive.{node.module}" if node.level else str(node.module))
    return found


def test_no_pipeline_module_imports_another_pipelines_code() -> None:
    for pipeline, allowed in PIPELINES.items():
        names = imported(pipeline)
        own = {f"redrive.{m}" for m, owner in OWNED.items() if owner == pipeline}
        others = {f"redrive.{p}" for p in PIPELINES if p != pipeline} | {
            f"redrive.{m}" for m, owner in OWNED.items() if owner != pipeline}
        assert not names & others, (pipeline, names & others)
        lambdas = {name.split(".")[0] for name in names} & LAMBDA_PACKAGES
        assert lambdas <= allowed, (pipeline, lambdas - allowed)
        assert own <= names | {f"redrive.{pipeline}"}


def test_the_core_imports_no_pipeline() -> None:
    core = {path.stem for path in REDRIVE.glob("*.py")} - set(PIPELINES) - set(OWNED) - {
        "__init__", "__main__"}
    assert {"cli", "run", "messages", "ranges", "replay", "stream", "deployment"} <= core
    for module in core:
        names = imported(module)
        assert not {name.split(".")[0] for name in names} & LAMBDA_PACKAGES, module
        assert not names & {f"redrive.{p}" for p in [*PIPELINES, *OWNED]}, module
