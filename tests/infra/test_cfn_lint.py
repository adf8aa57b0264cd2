"""The synthesized template passes cfn-lint: no errors, and no warnings but known ones.

Informational checks are not run: they only comment on the style of what aws-cdk-lib
generates (I1022, "prefer Fn::Sub over Fn::Join").
"""

from __future__ import annotations

from pathlib import Path

from cfnlint.api import ManualArgs, lint_file

KNOWN_WARNINGS = {
    # aws-cdk-lib's Function always adds DependsOn on its role, next to the GetAtt it
    # already has for the role's ARN. Harmless; the fix belongs upstream.
    ("W3005", "Resources/AggregatorFunction65A1DE15/DependsOn"),
}


def _findings(template: Path) -> list[tuple[str, str, str, str]]:
    matches = lint_file(template, ManualArgs(regions=["us-east-1"]))
    return [
        (m.rule.id, m.rule.severity, "/".join(str(p) for p in m.path[:3]), m.message)
        for m in matches
    ]


def test_template_has_no_cfn_lint_errors(synthesized_template: Path) -> None:
    findings = _findings(synthesized_template)
    errors = [f for f in findings if f[1] == "error"]
    assert errors == []


def test_template_has_no_unexpected_cfn_lint_warnings(synthesized_template: Path) -> None:
    findings = _findings(synthesized_template)
    unexpected = [f for f in findings if f[1] != "error" and (f[0], f[2]) not in KNOWN_WARNINGS]
    assert unexpected == []
