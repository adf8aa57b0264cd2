"""The usage part of ``make demo`` (``local_aws.demo.run_demo``): the aggregator's stack
synthesized, deployed into moto, zae-limiter's traffic (a soft limit in debt, a sharded
bucket, a quota among it), the handler, and the reader's view compared with the traffic."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_cdk import App
from zae_limiter.models import UsageSnapshot

from infra import AggregatorStack
from local_aws.demo import compare_reader, run_demo
from local_aws.server import MotoServer
from local_aws.traffic import SOFT, Traffic

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS.* not supported by moto")

REPO = Path(__file__).resolve().parents[2]
STACK = "StreamAggregator-usage-demo"
"""A name of its own: moto servers in one process share their CloudFormation backend."""


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(context=context, outdir=str(outdir))
    AggregatorStack(app, STACK)
    app.synth()
    return outdir


@pytest.fixture
def local_environment(moto: MotoServer) -> Iterator[None]:
    """The demo points the process at moto and sets the function's environment, as
    ``make demo`` does; the test gives the process its environment back afterwards."""
    saved = dict(os.environ)
    os.environ["AWS_ENDPOINT_URL"] = moto.endpoint_url
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.usefixtures("local_environment")
def test_the_demo_shows_the_overdraws_and_the_shards_and_they_match(
        assembly: Path, moto: MotoServer) -> None:
    lines: list[str] = []

    problems = run_demo(assembly, STACK, moto.endpoint_url, lines.append)

    output = "\n".join(lines)
    print(output)  # the demo's report, for `pytest -s`
    assert problems == 0, output
    assert "MISMATCH" not in output
    assert "tpd#od=" in output
    assert "Sharded bucket tenant-hot / gpt-4: the client doubled it to 4 shards" in output
    assert "records to the DLQ" in output


class OneSnapshotReader:
    """zae-limiter's reader as the demo calls it, returning one daily snapshot."""

    def __init__(self, snapshot: UsageSnapshot) -> None:
        self.snapshot = snapshot

    def get_usage_snapshots(self, **query: object) -> tuple[list[UsageSnapshot], None]:
        return [self.snapshot], None


@pytest.mark.parametrize(("counters", "overdrawn", "events", "mismatches"), [
    ({"rpm": 2, "tpd": 6_000}, {"tpd": 1}, 4, 0),
    ({"rpm": 2, "tpd": 6_000}, {"tpd": 1}, 3, 1),
    ({"rpm": 2, "tpd": 6_000}, {}, 4, 1),
    ({"rpm": 2, "tpd": 5_999}, {"tpd": 1}, 4, 1),
    ({"rpm": 2, "tpd": 6_000, "tpm": 1}, {"tpd": 1}, 4, 1),
])
def test_the_demo_counts_each_reader_row_that_disagrees_with_the_traffic(
        counters: dict[str, int], overdrawn: dict[str, int], events: int,
        mismatches: int) -> None:
    traffic = Traffic(namespace_id="ns")
    traffic.tokens.update({(SOFT.entity, SOFT.resource, "rpm"): 2, SOFT.key: 6_000})
    traffic.overdrawn[SOFT.key] = 1
    traffic.events[(SOFT.entity, SOFT.resource)] = 4
    lines: list[str] = []
    reader = OneSnapshotReader(UsageSnapshot(
        entity_id=SOFT.entity, resource=SOFT.resource, window_start="2026-12-02T00:00:00Z",
        window_end="2026-12-03T00:00:00Z", window_type="daily", counters=counters,
        total_events=events, overdrawn=overdrawn))

    problems = compare_reader(reader, traffic, lines.append)

    assert problems == mismatches
    assert sum("MISMATCH" in line for line in lines) == mismatches
