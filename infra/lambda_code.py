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

The usage pipeline's asset also carries zae-limiter's own bucket maintenance
(``aggregator/maintenance.py``): its ``zae_limiter_aggregator`` package, the pure modules
of ``zae_limiter`` that package imports under an empty ``__init__`` (as zae-limiter's own
``lambda_builder`` ships them: the full package would pull aiobotocore and click), and
their pure-Python dependencies ``cronsim`` and ``tzdata``. They are copied from the
distributions installed where the app synthesizes, through CDK's local bundling: no
network, no Docker.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, IgnoreMode, ILocalBundling
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
ZAE_LIMITER_VERSION = "0.17.0"
"""The zae-limiter release whose aggregator code the usage asset carries, and is tested
against: its functions' signatures and item layout are not a public API."""
VENDORED: dict[str, tuple[str, ...]] = {
    "zae-limiter": ("zae_limiter_aggregator/", "zae_limiter/schema.py",
                    "zae_limiter/bucket.py", "zae_limiter/models.py",
                    "zae_limiter/exceptions.py", "zae_limiter/schedule.py"),
    "cronsim": ("cronsim/",),
    "tzdata": ("tzdata/",),
}
"""Per distribution, the files (or folders, ending in ``/``) the usage asset copies, plus
each distribution's license files. ``zae_limiter/__init__.py`` is written empty."""


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
    """The function's code through CDK's own asset machinery (hashed and staged by CDK).

    The usage pipeline's is bundled locally (:func:`build_usage_asset`) and hashed by
    what it holds, so another installed zae-limiter, cronsim or tzdata redeploys it.
    """
    if pipeline_of(handler) == "aggregator":
        return lambda_.Code.from_asset(
            str(LAMBDA_ROOT), exclude=asset_excludes(handler), ignore_mode=IgnoreMode.GIT,
            asset_hash_type=AssetHashType.OUTPUT,
            bundling=BundlingOptions(
                # Never pulled: the local bundler always succeeds or raises.
                image=DockerImage.from_registry("local-bundling-only"),
                local=_UsageBundling()))
    return lambda_.Code.from_asset(str(LAMBDA_ROOT), exclude=asset_excludes(handler),
                                   ignore_mode=IgnoreMode.GIT)


def vendored_files() -> dict[str, Path]:
    """Asset path -> installed file, for everything :data:`VENDORED` names.

    Raises:
        RuntimeError: a distribution is missing, or zae-limiter is not
            :data:`ZAE_LIMITER_VERSION` (each message says what to install).
    """
    found: dict[str, Path] = {}
    for name, wanted in VENDORED.items():
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise RuntimeError(
                f"the usage aggregator's asset needs {name!r} installed where the app "
                f"synthesizes (pip install -r requirements.txt): it bundles "
                f"zae-limiter {ZAE_LIMITER_VERSION}'s bucket maintenance") from None
        if name == "zae-limiter" and dist.version != ZAE_LIMITER_VERSION:
            raise RuntimeError(
                f"zae-limiter {dist.version} is installed; the usage aggregator bundles and "
                f"is tested against {ZAE_LIMITER_VERSION} only "
                f"(pip install zae-limiter=={ZAE_LIMITER_VERSION})")
        for path in _dist_files(dist):
            text = path.as_posix()
            if ".dist-info/licenses/" in text or any(
                    text.startswith(w) if w.endswith("/") else text == w for w in wanted):
                found[text] = Path(str(dist.locate_file(path)))
        missing = [w for w in wanted if not any(p == w or p.startswith(w) for p in found)]
        if missing:
            raise RuntimeError(f"{name} {dist.version} has no {', '.join(missing)}")
    return found


def _dist_files(dist: importlib.metadata.Distribution) -> Iterator[Path]:
    for path in dist.files or ():
        parts = Path(path).parts
        if "__pycache__" not in parts and not path.name.endswith(".pyc") and ".." not in parts:
            yield Path(path)


def build_usage_asset(output_dir: Path) -> None:
    """Write the usage function's asset into ``output_dir``, which must be empty: the
    engine, the usage pipeline and :func:`vendored_files`, every file world-readable
    (Lambda runs the handler as another user than the one who installed the packages)."""
    if any(output_dir.iterdir()):
        raise RuntimeError(f"refusing to bundle into {output_dir}: it is not empty")
    files = {p.relative_to(LAMBDA_ROOT).as_posix(): p
             for package in (ENGINE, "aggregator")
             for p in (LAMBDA_ROOT / package).rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    files.update(vendored_files())
    for relative, source in sorted(files.items()):
        target = output_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        target.chmod(0o644)
    (output_dir / "zae_limiter" / "__init__.py").write_text("")
    (output_dir / "zae_limiter" / "__init__.py").chmod(0o644)


@jsii.implements(ILocalBundling)
class _UsageBundling:
    """CDK's local bundling hook for the usage asset (never Docker)."""

    def try_bundle(self, output_dir: str, *_: Any, **__: Any) -> bool:
        build_usage_asset(Path(output_dir))
        return True
