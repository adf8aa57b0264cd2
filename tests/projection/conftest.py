"""The example stack from the app's one synth, shared by the template tests and the demo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from tests.infra.support import ENV_NAME, stack_template

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

STACK = f"SentimentProjection-{ENV_NAME}"


@pytest.fixture(scope="session")
def projection_assembly(app_assembly: Path) -> Path:
    """The app's own synth, which holds the example stack: no synth of its own."""
    return app_assembly


@pytest.fixture(scope="session")
def projection_template(projection_assembly: Path) -> Template:
    return stack_template(projection_assembly, STACK)
