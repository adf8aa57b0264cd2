"""Which lanes a test runs in, read from what it uses, so a new test needs no decorator.

What a test uses: every name its module imports, and every global name its fixtures'
functions refer to. ``make test-fast`` runs the tests in none of the lanes (the markers
are registered in ``pyproject.toml``); ``make test`` runs every lane:

* ``synth``: it builds CDK constructs (uses ``aws_cdk``) or reads a synthesized cloud
  assembly (a fixture named ``*assembly`` is in its closure);
* ``moto``: a fixture in its closure returns or yields moto's server (``MotoServer``);
* ``slow``: it starts other processes (uses ``subprocess``: checkov, wheel builds, the
  bench CLI) or drives an exactly-once proof (uses a ``local_aws.*harness`` module or its
  ``run``, ``run_seed``, ``prove_seed`` or ``compare``; its record builders stay fast).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from types import CodeType
from typing import Any

import pytest

PROOF_DRIVERS = {"run", "run_seed", "prove_seed", "compare"}
"""What every ``local_aws.*harness`` names the functions that run or check a proof."""


def _source(value: object) -> str:
    """The module ``value`` is or comes from ('' when it does not say)."""
    name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", "")
    return name if isinstance(name, str) else ""


def _names(code: CodeType) -> Iterator[str]:
    """The global names ``code`` and the functions defined inside it refer to."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _names(const)


def _fixture_functions(item: pytest.Item) -> Iterator[Callable[..., Any]]:
    info = getattr(item, "_fixtureinfo", None)
    if info is not None:
        for definitions in info.name2fixturedefs.values():
            for definition in definitions:
                yield definition.func


def _used(item: pytest.Item) -> Iterator[object]:
    """What ``item`` uses: its module's imports and its fixtures' globals."""
    module = getattr(item, "module", None)
    if module is not None:
        yield from vars(module).values()
    for func in _fixture_functions(item):
        used = func.__globals__
        yield from (used[name] for name in _names(func.__code__) if name in used)


def _builds_constructs(value: object) -> bool:
    source = _source(value)
    return source == "aws_cdk" or source.startswith("aws_cdk.")


def _starts_processes(value: object) -> bool:
    return _source(value) == "subprocess"


def _drives_a_proof(value: object) -> bool:
    source = _source(value)
    return (source.startswith("local_aws.") and source.endswith("harness")
            and (inspect.ismodule(value) or getattr(value, "__name__", "") in PROOF_DRIVERS))


def _starts_moto(item: pytest.Item) -> bool:
    return any("MotoServer" in str(inspect.signature(func).return_annotation)
               for func in _fixture_functions(item))


def lanes(item: pytest.Item) -> set[str]:
    """The lanes ``item`` belongs to; none means the fast lane."""
    used = list(_used(item))
    closure: list[str] = getattr(item, "fixturenames", [])
    found: set[str] = set()
    if any(map(_builds_constructs, used)) or any(n.endswith("assembly") for n in closure):
        found.add("synth")
    if _starts_moto(item):
        found.add("moto")
    if any(_starts_processes(value) or _drives_a_proof(value) for value in used):
        found.add("slow")
    return found
