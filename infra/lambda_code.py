"""The Lambda code this library deploys, and the parts of it the constructs read at synth.

The functions' packages are written for Lambda, where each is a top-level package of its
asset: the engine every pipeline shares (:data:`ENGINE`) and one package per pipeline
(:data:`PIPELINES`). From a checkout they live in ``lambda_src/``; in the installed wheel,
in this package's own ``lambda_src/`` folder. Neither folder is put on ``sys.path``:

* the uniquely named packages (``streamagg_*``) are imported under their own names, from
  wherever Python already finds them or else from that folder;
* ``aggregator``, the usage pipeline's name in Lambda (its handler string is fixed), is a
  common name that a user's app may well have: it is imported as ``aggregator`` only when
  that name resolves to this folder (a checkout with ``lambda_src`` on the path, as in the
  tests), and otherwise as ``streamagg_usage``, so the two never shadow each other.

The constructs read the settings classes, environment names and metric names from here,
so the Lambda and the CDK app share one definition and a bad setting fails at synth.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from aws_cdk import IgnoreMode
from aws_cdk import aws_lambda as lambda_

_HERE = Path(__file__).resolve().parent
LAMBDA_ROOT = _HERE / "lambda_src" if (_HERE / "lambda_src").is_dir() \
    else _HERE.parent / "lambda_src"
"""The folder whose top-level packages become the functions' assets."""

ENGINE = "streamagg_engine"
PIPELINES = ("aggregator", "streamagg_events", "streamagg_bundles", "streamagg_projection")
"""The pipeline packages; a function's handler is ``<pipeline>.handler.handler``."""
USAGE_ALIAS = "streamagg_usage"
"""The name ``aggregator`` is imported under when a user's own ``aggregator`` is first."""


def _is_ours(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return False
    return Path(spec.origin).resolve().parent == (LAMBDA_ROOT / name).resolve()


def _load_from_root(package: str, as_name: str) -> ModuleType:
    if as_name in sys.modules:
        return sys.modules[as_name]
    folder = LAMBDA_ROOT / package
    spec = importlib.util.spec_from_file_location(
        as_name, folder / "__init__.py", submodule_search_locations=[str(folder)])
    if spec is None or spec.loader is None:  # pragma: no cover - the files ship with us
        raise ImportError(f"cannot load the Lambda package {package!r} from {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[as_name] = module
    spec.loader.exec_module(module)
    return module


def package(name: str) -> ModuleType:
    """One of this library's Lambda packages, imported without shadowing a user's."""
    if name not in (ENGINE, *PIPELINES):
        raise ValueError(f"{name!r} is not one of this library's Lambda packages")
    if name != ENGINE:
        package(ENGINE)  # the pipelines import it by its own name
    if name == "aggregator":
        if _is_ours(name):
            return importlib.import_module(name)
        return _load_from_root(name, USAGE_ALIAS)
    if importlib.util.find_spec(name) is not None:
        return importlib.import_module(name)
    return _load_from_root(name, name)


def module(pipeline: str, name: str) -> ModuleType:
    """``<pipeline>.<name>``, e.g. ``module("aggregator", "config")``."""
    return importlib.import_module(f"{package(pipeline).__name__}.{name}")


def pipeline_of(handler: str) -> str:
    """The pipeline package a handler string names, checked."""
    parts = handler.split(".")
    if len(parts) != 3 or parts[0] not in PIPELINES:
        raise ValueError(
            f"handler must be <pipeline>.<module>.<function> with a pipeline of "
            f"{', '.join(PIPELINES)}; got {handler!r}")
    return parts[0]


def asset_excludes(handler: str) -> list[str]:
    """Git-style ignore rules that leave the engine and the handler's own pipeline.

    No caches and no boto3 (the runtime provides it); editing one pipeline changes only
    its own function's asset hash.
    """
    return ["/*", f"!/{ENGINE}/", f"!/{pipeline_of(handler)}/", "__pycache__/", "*.pyc"]


def asset_code(handler: str) -> lambda_.Code:
    """The function's code through CDK's own asset machinery (hashed and staged by CDK)."""
    return lambda_.Code.from_asset(str(LAMBDA_ROOT), exclude=asset_excludes(handler),
                                   ignore_mode=IgnoreMode.GIT)
