"""The event-metrics part of ``make demo``, on the synthesized example stack and moto."""

from __future__ import annotations

from pathlib import Path

from local_aws.events_demo import run_demo
from local_aws.server import MotoServer

from .conftest import EXAMPLE


def test_the_demo_matches_its_ground_truth(app_assembly: Path, moto: MotoServer) -> None:
    lines: list[str] = []
    problems = run_demo(app_assembly, EXAMPLE, moto.endpoint_url, lines.append)
    text = "\n".join(lines)
    assert problems == 0, text
    assert "match the ground truth exactly" in text
    assert "checkout-button  blue" in text
    assert "events/year=2026/month=01/day=31/hour=2" in text
