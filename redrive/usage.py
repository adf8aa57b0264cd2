"""The usage aggregator's recovery: replay its DynamoDB stream ranges through
``aggregator.handler`` and report what the snapshots' watermarks make of them.

A replayed record is added to a snapshot item only if the item has not counted it
(:mod:`redrive.watermarks` reads the items' counted ranges before the replay), so a
replay never counts twice, and a range the mapping gave up on and went on from is added
whatever the items counted since.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aggregator.config import AggregatorConfig
from aggregator.handler import Runtime, build_runtime, handle

from .deployment import Deployment
from .messages import FailedRange
from .replay import InProcessTarget, Target
from .run import Check, Redrive, Report, Say
from .stream import RecordFilter, StreamRanges
from .watermarks import WatermarkCheck, check_range

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

PACKAGE = "aggregator"
LOST = ("Their tokens are in every snapshot item where a later record of the same bucket "
        "was counted in the same window (the bucket's counters say what they consumed); "
        "missing are their events (total_events), the tokens of buckets with no later "
        "record in that window, the tokens no finer window could place (the saved query "
        "'gaps', kind 'unplaced', names the items and the tokens at most), and their audit "
        "removals' lines in the archive")


class UsagePipeline(StreamRanges):
    """The usage aggregator's ranges: read from the table's stream, checked against the
    snapshots' counted ranges, replayed through its handler."""

    lost = LOST

    def __init__(self, *, streams: DynamoDBStreamsClient, dynamodb: DynamoDBClient,
                 config: AggregatorConfig, target: Target, filters: Mapping[str, RecordFilter],
                 region: str, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(streams, filters=filters, region=region, sleep=sleep)
        self._dynamodb = dynamodb
        self._config = config
        self.target = target

    def check(self, failed: FailedRange, records: list[dict[str, Any]], say: Say) -> Check:
        check = check_range(records, config=self._config,
                            dynamodb=self._dynamodb)
        _describe(check, say)
        return Check(replay=records, detail=check)


def _describe(check: WatermarkCheck, say: Say) -> None:
    say(f"    {check.counting_records} record(s) move counters: "
        f"{check.to_add} snapshot contribution(s) to add, "
        f"{check.already_counted} already counted"
        + (f" ({check.events_only} of those to add inside gaps: their events only)"
           if check.events_only else "")
        + (f"; {check.archive_lines} audit removal(s) to archive" if check.archive_lines else "")
        + (f"; {check.malformed} malformed (skipped, as before)" if check.malformed else ""))


def redrive(deployment: Deployment, sleep: Callable[[float], None] = time.sleep) -> Report:
    """Recover the usage aggregator's DLQ (see :mod:`redrive.run`)."""
    say, clients = deployment.say, deployment.clients
    config = AggregatorConfig.from_env(dict(deployment.environment))
    mappings = deployment.stream_mappings("dynamodb")
    filters = {} if deployment.ignore_filters else {
        m["EventSourceArn"]: RecordFilter.from_criteria(m.get("FilterCriteria"))
        for m in mappings}
    dynamodb = clients("dynamodb")
    say(f"redrive: usage aggregator; queue {deployment.queue_url}")
    say(f"         function {deployment.function_name}; snapshots in {config.snapshot_table}")
    deployment.describe_mappings(mappings, filters)
    runtime: Runtime | None = None
    target: Target
    if deployment.invoke:
        target = deployment.invoke_target()
    else:
        runtime = local = build_runtime(deployment.handler_environment(), dynamodb=dynamodb,
                                        s3=clients("s3"))
        target = InProcessTarget(lambda event, now_ms: handle(event, local, now_ms=now_ms),
                                 PACKAGE)
    say(f"         replay: {target.description}")
    try:
        pipeline = UsagePipeline(streams=clients("dynamodbstreams"), dynamodb=dynamodb,
                                 config=config, target=target, filters=filters,
                                 region=deployment.region, sleep=sleep)
        return Redrive(sqs=clients("sqs"), queue_url=deployment.queue_url, pipeline=pipeline,
                       settings=deployment.settings, out=say, sleep=sleep).run()
    finally:
        if runtime is not None:
            runtime.pool.shutdown(wait=True)
