"""A figure: one measured value, its goal and how it compares with the naive baseline."""

from __future__ import annotations

import json
import operator
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq,
}


@dataclass(frozen=True)
class Goal:
    """``value <op> target``, and optionally ``baseline_ratio >= min_ratio``."""

    op: str
    target: float
    min_ratio: float | None = None

    def met(self, value: float, ratio: float | None) -> bool:
        if not _COMPARE[self.op](value, self.target):
            return False
        return self.min_ratio is None or (ratio is not None and ratio >= self.min_ratio)

    def __str__(self) -> str:
        text = f"{self.op} {_number(self.target)}"
        if self.min_ratio is not None:
            text += f" and >= {_number(self.min_ratio)}x baseline"
        return text


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    goal: Goal | None = None
    baseline_ratio: float | None = None
    """How many times better than the naive baseline (> 1 is better, whichever way the
    unit points); None where the baseline has no counterpart."""

    @property
    def meets_goal(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self.value, self.baseline_ratio)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _round(self.value),
            "unit": self.unit,
            "goal": None if self.goal is None else str(self.goal),
            "meets_goal": self.meets_goal,
            "baseline_ratio": None if self.baseline_ratio is None else _round(self.baseline_ratio),
        }


def table(figures: Sequence[Figure]) -> str:
    """The figures as a Markdown table (it reads as well in a terminal as in the README)."""
    rows = [("figure", "value", "unit", "goal", "met", "vs baseline")]
    for f in figures:
        met = {True: "yes", False: "NO", None: "-"}[f.meets_goal]
        ratio = "-" if f.baseline_ratio is None else f"{_number(f.baseline_ratio)}x"
        rows.append((f.name, _number(f.value), f.unit, str(f.goal or "-"), met, ratio))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where the figures came from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        nproc = ""
    return {"nproc": int(nproc) if nproc.strip().isdigit() else None, "cpu": cpu,
            "python": platform.python_version(), "implementation": sys.implementation.name,
            "platform": platform.platform()}


def write_json(path: Path, figures: Sequence[Figure]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([f.to_json() for f in figures], indent=2) + "\n")


def _round(value: float) -> float:
    return float(f"{value:.4g}") if isinstance(value, float) else value


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
