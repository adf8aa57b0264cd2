"""Shared, module- or session-scoped synths: a synth takes seconds, so tests share them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra import AggregatorStack

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

REPO = Path(__file__).resolve().parents[2]
STACK_NAME = "StreamAggregator-test"


def cdk_json_context(**overrides: Any) -> dict[str, Any]:
    """The context ``cdk synth`` sees (cdk.json), with ``overrides`` on top."""
    context: dict[str, Any] = json.loads((REPO / "cdk.json").read_text())["context"]
    return {**context, **overrides}


ContextFactory = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def cdk_context() -> ContextFactory:
    """``cdk_context(**overrides)``: the cdk.json context with ``overrides`` on top."""
    return cdk_json_context


@pytest.fixture(scope="session")
def synthesized_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app as ``app.py`` builds it (cdk.json context, cdk-nag), synthesized to disk.

    Synth raises here if cdk-nag finds anything that is not acknowledged.
    """
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(context=cdk_json_context(), outdir=str(outdir))
    AggregatorStack(app, STACK_NAME)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return outdir


@pytest.fixture(scope="session")
def synthesized_template(synthesized_app: Path) -> Path:
    """The stack's template in :func:`synthesized_app`."""
    return synthesized_app / f"{STACK_NAME}.template.json"
