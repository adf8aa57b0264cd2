"""One synth of the example stack (with cdk-nag), shared by the template tests and the demo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from aws_cdk import App, Validations
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from infra.stacks.projection_stack import ProjectionStack

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

STACK = "SentimentProjection-test"


@pytest.fixture(scope="session")
def projection_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("projection.out")
    app = App(outdir=str(outdir))
    ProjectionStack(app, STACK)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return outdir


@pytest.fixture(scope="session")
def projection_template(projection_assembly: Path) -> Template:
    return Template.from_json(json.loads(
        (projection_assembly / f"{STACK}.template.json").read_text()))
