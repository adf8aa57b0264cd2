"""Every synthesized template passes cfn-lint: no errors, and no warnings but known ones.

The templates: the app's, the construct variants' (every prop overridden, existing
resources, archival off, a separate snapshot table) and the consumer app's.

Ignored, with the reason:

* W3005 on an ``AWS::Lambda::Function``'s ``DependsOn``: aws-cdk-lib's Function always
  adds DependsOn on its role next to the GetAtt it already has for the role's ARN.
  Harmless; the fix belongs upstream.

Informational checks are not run: they only comment on the style of what aws-cdk-lib
generates (I1022, "prefer Fn::Sub over Fn::Join").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from .support import CONSUMER_STACK, STACK_NAME, VARIANTS

Finding = tuple[str, str, str, str]


def _findings(template: Path) -> list[Finding]:
    matches = lint_file(template, ManualArgs(regions=["us-east-1"]))
    return [
        (m.rule.id, m.rule.severity, "/".join(str(p) for p in m.path[:3]), m.message)
        for m in matches
    ]


def _known(template: Path, finding: Finding) -> bool:
    rule, _, path, _ = finding
    resources = json.loads(template.read_text())["Resources"]
    parts = path.split("/")
    return (rule == "W3005" and len(parts) == 3 and parts[2] == "DependsOn"
            and resources[parts[1]]["Type"] == "AWS::Lambda::Function")


@pytest.fixture(scope="module")
def templates(app_assembly: Path, variants_assembly: Path,
              consumer_assembly: Path) -> dict[str, Path]:
    found = {STACK_NAME: app_assembly / f"{STACK_NAME}.template.json",
             CONSUMER_STACK: consumer_assembly / f"{CONSUMER_STACK}.template.json"}
    found.update({name: variants_assembly / f"{name}.template.json" for name in VARIANTS})
    return found


@pytest.fixture(scope="module")
def findings(templates: dict[str, Path]) -> dict[str, list[Finding]]:
    return {name: _findings(path) for name, path in templates.items()}


@pytest.mark.parametrize("name", [STACK_NAME, *VARIANTS, CONSUMER_STACK])
def test_template_has_no_cfn_lint_errors(findings: dict[str, list[Finding]], name: str) -> None:
    assert [f for f in findings[name] if f[1] == "error"] == []


@pytest.mark.parametrize("name", [STACK_NAME, *VARIANTS, CONSUMER_STACK])
def test_template_has_no_unexpected_cfn_lint_warnings(
    findings: dict[str, list[Finding]], templates: dict[str, Path], name: str
) -> None:
    unexpected = [f for f in findings[name]
                  if f[1] != "error" and not _known(templates[name], f)]
    assert unexpected == []
