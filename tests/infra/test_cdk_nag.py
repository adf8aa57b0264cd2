"""cdk-nag's AWS Solutions pack finds nothing that is not acknowledged with a reason."""

from __future__ import annotations

import json
from pathlib import Path


def test_app_synthesizes_with_cdk_nag(synthesized_app: Path) -> None:
    """The fixture's synth raises on an unacknowledged finding; the report is empty."""
    report = json.loads((synthesized_app / "validation-report.json").read_text())
    assert report["pluginReports"] == []
