"""The projection's part of ``make demo``, on moto, from the synthesized example stack."""

from __future__ import annotations

from pathlib import Path

from local_aws.projection_demo import run_demo
from local_aws.server import MotoServer

from .conftest import STACK


def test_demo_finds_no_problem_and_prints_the_dashboard(
        projection_assembly: Path, moto: MotoServer) -> None:
    lines: list[str] = []
    assert run_demo(projection_assembly, STACK, moto.endpoint_url, lines.append) == 0
    text = "\n".join(lines)
    assert "day 2026-03-02: 2 item(s), 4 tag item(s)" in text
    assert "tag europe" not in text.split("dashboard after phase 1")[1]
    assert "the replay changed nothing" in text
