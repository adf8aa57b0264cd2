"""Shared, session-scoped synths: a synth takes seconds, so tests share them.

Besides the app's own synth (``app_assembly``, in tests/conftest.py), two cloud
assemblies, each synthesized once with cdk-nag's AwsSolutions pack (synth raises on any
unacknowledged finding):

* ``variants_assembly``: :class:`StreamAggregator` with every prop overridden, an existing
  bucket and topic, archival off, a separate snapshot table (one stack each);
* ``consumer_assembly``: a consumer app outside this repository, using the package as
  ``pip`` installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from .support import (
    CONSUMER_APP,
    CONSUMER_STACK,
    REPO,
    STACK_NAME,
    VARIANTS,
    Variants,
    build_variants,
    cdk_json_context,
    stack_template,
    synth_with_nag,
)

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ContextFactory = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def cdk_context() -> ContextFactory:
    """``cdk_context(**overrides)``: the cdk.json context with ``overrides`` on top."""
    return cdk_json_context


@pytest.fixture(scope="session")
def synthesized_template(app_assembly: Path) -> Path:
    """The usage aggregator's stack template in the app's synth."""
    return app_assembly / f"{STACK_NAME}.template.json"


@pytest.fixture(scope="session")
def app_template(synthesized_template: Path) -> Template:
    """:func:`synthesized_template` for ``aws_cdk.assertions``."""
    return Template.from_json(json.loads(synthesized_template.read_text()))


# --- StreamAggregator variants -------------------------------------------------------

@pytest.fixture(scope="session")
def variants_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:data:`VARIANTS`, one stack each, in one app (one synth), checked by cdk-nag."""
    return synth_with_nag(tmp_path_factory.mktemp("variants.out"), build_variants)


@pytest.fixture(scope="session")
def variants(variants_assembly: Path) -> Variants:
    return Variants(*(stack_template(variants_assembly, name) for name in VARIANTS))


# --- a consumer app outside this repository -------------------------------------------

@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The library's wheel, built by ``python -m build`` (no download: ``--no-isolation``)
    from a copy of what the package is made of, so no stale ``build/`` can leak into it."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source)
    for folder in ("infra", "lambda_src"):
        shutil.copytree(REPO / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
         str(source)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="session")
def consumer_site(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """The wheel installed offline (``--no-index``) into a folder of its own, nothing else."""
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return site


@pytest.fixture(scope="session")
def consumer_assembly(tmp_path_factory: pytest.TempPathFactory, consumer_site: Path) -> Path:
    """:data:`CONSUMER_APP` synthesized in a directory outside the repo, beside the
    consumer's own ``infra`` and ``aggregator`` packages; its ``cdk.out``."""
    workdir = tmp_path_factory.mktemp("consumer")
    (workdir / "app.py").write_text(CONSUMER_APP)
    for own in ("infra", "aggregator"):
        (workdir / own).mkdir()
        (workdir / own / "__init__.py").write_text('OWNER = "consumer"\n')
    env = {**os.environ, "PYTHONPATH": str(consumer_site)}
    result = subprocess.run(
        [sys.executable, "app.py", str(consumer_site)],
        cwd=workdir, env=env, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir / "cdk.out"


@pytest.fixture(scope="session")
def consumer_template(consumer_assembly: Path) -> Path:
    return consumer_assembly / f"{CONSUMER_STACK}.template.json"
