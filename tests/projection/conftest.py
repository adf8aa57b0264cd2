"""One synth of the example stack (with cdk-nag), shared by the template tests and the demo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from infra.stacks.projection_stack import ProjectionStack
from tests.infra.support import stack_template, synth_with_nag

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

STACK = "SentimentProjection-test"


@pytest.fixture(scope="session")
def projection_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_with_nag(tmp_path_factory.mktemp("projection.out"),
                          lambda app: ProjectionStack(app, STACK))


@pytest.fixture(scope="session")
def projection_template(projection_assembly: Path) -> Template:
    return stack_template(projection_assembly, STACK)
