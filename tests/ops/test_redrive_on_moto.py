"""The redrive end to end on moto: an outage sends batches to the DLQ, the redrive recovers them.

The function fails every invocation for a while (``Delivery.drain("down")``): the local
event source mapping retries, bisects and sends Lambda's on-failure messages (shard and
sequence range) to a real SQS queue. ``python -m redrive`` then reads those ranges back
from the table's stream and replays them through the real handler.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import AggregatorConfig
from redrive.cli import main
from tests.moto_fixtures import LocalAws

from .support import (
    Delivery,
    Traffic,
    archived_event_ids,
    create_function,
    create_queue,
    queue_messages,
    send,
    snapshot_tokens,
)

ENTITIES = ["tenant-a", "tenant-b", "tenant-c", "tenant-d"]


class Deployment:
    """A table, bucket, function (for its environment), DLQ and a local mapping."""

    def __init__(self, aws: LocalAws, tmp_path: Path) -> None:
        self.aws = aws
        self.table, stream = aws.create_table("redrive")
        self.bucket = aws.create_bucket()
        self.config = AggregatorConfig(table_name=self.table, archive_bucket_name=self.bucket)
        self.function = create_function(aws, self.config.to_env())
        self.queue = create_queue(aws)
        self.delivery = Delivery(aws, stream, aws.runtime(self.config), self.queue)
        self.traffic = Traffic(aws, self.table)
        self.log = tmp_path / "handler.log"

    def redrive(self, *options: str) -> tuple[int, str]:
        out = io.StringIO()
        code = main(["--queue-url", self.queue, "--function-name", self.function,
                     "--region", "us-east-1", "--endpoint-url", self.aws.endpoint_url,
                     "--handler-log", str(self.log), "--wait-seconds", "0", *options], out=out)
        return code, out.getvalue()

    def snapshots(self, window: str = "hourly") -> dict[tuple[str, str], int]:
        return {k: v for k, v in snapshot_tokens(self.aws, self.table, window).items() if v}

    def truth(self) -> dict[tuple[str, str], int]:
        return {k: v for k, v in self.traffic.tokens.items() if v}


@pytest.fixture
def deployment(aws: LocalAws, tmp_path: Path) -> Deployment:
    return Deployment(aws, tmp_path)


def outage(deployment: Deployment) -> list[dict[str, Any]]:
    """Traffic while the function is down: everything ends in the DLQ."""
    traffic = deployment.traffic
    traffic.audit_removal("tenant-a")
    traffic.audit_removal("tenant-b")
    traffic.burst(ENTITIES, rounds=6, seed=1)
    sent = deployment.delivery.drain("down")
    assert sent >= 26
    messages = queue_messages(deployment.aws, deployment.queue)
    assert len(messages) >= 3
    assert deployment.snapshots() == {}
    return sorted(messages, key=lambda m: int(m["DDBStreamBatchInfo"]["startSequenceNumber"]))


def test_redrive_recovers_an_outage_exactly_and_a_second_run_changes_nothing(
    deployment: Deployment,
) -> None:
    messages = outage(deployment)
    # The operator disabled the mapping: newer traffic waits in the stream.
    deployment.traffic.burst(ENTITIES, rounds=3, seed=2)

    code, report = deployment.redrive("--dry-run")
    assert code == 0, report
    assert f"handling {len(messages)}, oldest first (dry run" in report
    assert report.count("; would recover\n") == len(messages)
    assert len(queue_messages(deployment.aws, deployment.queue)) == len(messages)
    assert deployment.snapshots() == {}

    code, report = deployment.redrive("--batch-size", "3")
    assert code == 0, report
    assert report.count("recovered:") == len(messages)
    assert "batch 2/2: 2 records" in report
    assert queue_messages(deployment.aws, deployment.queue) == []

    # The last message again (a run that stopped before deleting it): already counted. (The
    # same batch size cuts the same archive objects; another would archive its audit lines
    # into a second object, as any differently split redelivery does.)
    send(deployment.aws, deployment.queue, messages[-1:])
    code, report = deployment.redrive("--batch-size", "3")
    assert code == 0, report
    assert re.search(r": 0 snapshot contribution\(s\) to add, [1-9]\d* already counted",
                     report)
    assert queue_messages(deployment.aws, deployment.queue) == []

    # Every message again: every range is inside what the items counted, so nothing is
    # added, however many newer records each item counted since.
    send(deployment.aws, deployment.queue, messages)
    code, report = deployment.redrive("--batch-size", "3")
    assert code == 0, report
    assert not re.search(r"[1-9]\d* snapshot contribution\(s\) to add", report)
    assert queue_messages(deployment.aws, deployment.queue) == []

    deployment.delivery.drain("up")  # the mapping is enabled again
    assert deployment.snapshots("hourly") == deployment.truth()
    assert deployment.snapshots("daily") == deployment.truth()
    assert archived_event_ids(deployment.aws, deployment.bucket) == {
        event_id: 1 for event_id in deployment.traffic.audit_event_ids}


def test_a_redrive_after_the_mapping_moved_on_restores_the_ground_truth(
    deployment: Deployment,
) -> None:
    """The mapping gave up on the outage's batches and went on: the same buckets' newer
    records were counted first. Each item's counted range starts after the outage, so the
    redrive's records are below it: added, not taken for duplicates."""
    messages = outage(deployment)
    deployment.traffic.burst(ENTITIES, rounds=2, seed=3)
    deployment.delivery.drain("up")
    assert deployment.snapshots() != deployment.truth()

    code, report = deployment.redrive("--dry-run")
    assert code == 0, report
    assert re.search(r"[1-9]\d* snapshot contribution\(s\) to add", report)

    code, report = deployment.redrive()
    assert code == 0, report
    assert queue_messages(deployment.aws, deployment.queue) == []
    assert deployment.snapshots("hourly") == deployment.truth()
    assert deployment.snapshots("daily") == deployment.truth()

    send(deployment.aws, deployment.queue, messages)  # and again: nothing more
    code, report = deployment.redrive()
    assert code == 0, report
    assert deployment.snapshots("hourly") == deployment.truth()
