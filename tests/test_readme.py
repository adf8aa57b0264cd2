"""The README's construct sections tell the truth: every prop table matches the
constructs' signatures and defaults, and every code sample synthesizes.

The tables are those of "Use the construct in your own app": one shared table whose
columns are the constructs (a cell is the default, ``—`` a prop the construct does not
take) and one table per construct for its own props. A construct's props are its
explicit keyword parameters plus the keys of the ``**props`` ``TypedDict``; their
defaults come from the signature, or from the construct module's ``DEFAULTS``.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack

from infra import EventMetricsAggregator, ObjectBundler, ProjectionStage, StreamAggregator

README = Path(__file__).resolve().parent.parent / "README.md"
SECTIONS = ("Use the construct in your own app", "Configuration reference")
CONSTRUCTS: dict[str, type] = {cls.__name__: cls for cls in (
    StreamAggregator, EventMetricsAggregator, ProjectionStage, ObjectBundler)}
NOT_TAKEN = "—"
_UNITS = {"s": 1, "min": 60, "h": 3600, "days": 86_400}
_NO_DEFAULT = object()


def _sections() -> str:
    text = README.read_text()
    chunks = re.split(r"^## ", text, flags=re.MULTILINE)
    found = [chunk for chunk in chunks if chunk.split("\n", 1)[0].strip() in SECTIONS]
    assert len(found) == len(SECTIONS), "a README section is missing"
    return "\n".join(found)


def _tables(text: str) -> Iterator[list[list[str]]]:
    rows: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            yield [rows[0], *rows[2:]]
            rows = []


def _name(cell: str) -> str:
    return cell.strip("`")


def documented() -> dict[str, dict[str, str]]:
    """Construct -> documented prop -> documented default."""
    props: dict[str, dict[str, str]] = {name: {} for name in CONSTRUCTS}
    for header, *rows in _tables(_sections()):
        if header[0] == "prop":
            columns = {i: _name(cell) for i, cell in enumerate(header) if _name(cell) in props}
            for row in rows:
                for i, construct in columns.items():
                    if row[i] != NOT_TAKEN:
                        props[construct][_name(row[0])] = row[i]
        elif header[0].endswith(" prop") and _name(header[0][:-5]) in props:
            for row in rows:
                props[_name(header[0][:-5])][_name(row[0])] = row[1]
    return props


def actual(cls: type) -> dict[str, Any]:
    """The construct's props and their defaults (``_NO_DEFAULT`` when required)."""
    init = vars(cls)["__init__"]
    signature = inspect.signature(init)
    found: dict[str, Any] = {}
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            found[name] = (_NO_DEFAULT if parameter.default is inspect.Parameter.empty
                           else parameter.default)
    hints = typing.get_type_hints(init)
    (keywords,) = typing.get_args(hints["props"])
    defaults = sys.modules[cls.__module__].DEFAULTS
    found.update({name: getattr(defaults, name) for name in keywords.__annotations__})
    return found


def matches(cell: str, value: Any) -> bool | None:
    """Whether a documented default is ``value``; None when the cell is prose."""
    if cell == "required":
        return value is _NO_DEFAULT
    if cell == "none":
        return value is None or value == ()
    duration = re.fullmatch(r"(\d+) (s|min|h|days)", cell)
    if duration and isinstance(value, Duration):
        return int(duration[1]) * _UNITS[duration[2]] == value.to_seconds()
    literal = re.fullmatch(r"`([^`]*)`", cell)
    if literal is None:
        return None
    if re.fullmatch(r"[A-Z][A-Z0-9_]*", literal[1]):
        named = getattr(type(value), literal[1], None)
        return named is not None and (named == value or getattr(named, "name", 0)
                                      == getattr(value, "name", 1))
    try:
        expected = ast.literal_eval(literal[1])
    except (ValueError, SyntaxError):
        return None
    return bool(expected == value and type(expected) is type(value))


@pytest.mark.parametrize("construct", CONSTRUCTS)
def test_every_prop_is_documented_and_every_documented_prop_exists(construct: str) -> None:
    assert set(documented()[construct]) == set(actual(CONSTRUCTS[construct]))


@pytest.mark.parametrize("construct", CONSTRUCTS)
def test_documented_literal_defaults_are_the_constructs(construct: str) -> None:
    props = actual(CONSTRUCTS[construct])
    wrong = {name: cell for name, cell in documented()[construct].items()
             if name in props and matches(cell, props[name]) is False}
    assert wrong == {}


def test_the_table_reader_sees_literals_and_prose_apart() -> None:
    assert matches("`100`", 100)
    assert matches("`\"INFO\"`", "INFO")
    assert matches("`100`", 99) is False
    assert matches("`1769`", True) is False
    assert matches("6 h", Duration.hours(6))
    assert matches("5 s", Duration.seconds(1)) is False
    assert matches("none", ())
    assert matches("required", _NO_DEFAULT)
    assert matches("a new bucket", None) is None


def samples() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", _sections(), flags=re.MULTILINE | re.DOTALL)


def test_the_sections_have_samples() -> None:
    assert len(samples()) >= 3


@pytest.mark.synth
def test_every_sample_synthesizes(tmp_path: Path) -> None:
    """Each sample runs in a stack of its own, all in one app synthesized once."""
    app = App(outdir=str(tmp_path))
    for index, sample in enumerate(samples()):
        stack = Stack(app, f"ReadmeSample{index}")
        exec(compile(sample, f"README sample {index}", "exec"), {"stack": stack})
    assembly = app.synth()
    assert len(assembly.stacks) == len(samples())
    for stack_artifact in assembly.stacks:
        assert stack_artifact.template["Resources"]
