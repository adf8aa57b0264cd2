"""``local_aws.bundles_demo``: the example stack, synthesized and deployed into moto."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App

from infra.stacks.bundles_stack import BundlesStack
from local_aws.bundles_demo import run_demo
from local_aws.server import MotoServer

STACK = "BundlesDemo"


def test_the_demo_bundles_every_object_once_and_says_what_it_did(
        tmp_path: Path, moto: MotoServer) -> None:
    app = App(outdir=str(tmp_path))
    BundlesStack(app, STACK)
    app.synth()
    lines: list[str] = []

    problems = run_demo(tmp_path, STACK, moto.endpoint_url, lines.append)

    output = "\n".join(lines)
    assert problems == 0, output
    assert "every one of the 6 objects is in exactly one bundle" in output
    assert "does not replicate" in output
    assert output.count("objects/0000") == 6

