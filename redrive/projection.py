"""The projection stage's recovery: replay its DynamoDB stream ranges through
``streamagg_projection.handler``, followed by each touched item's newer records.

The handler writes a source item's dashboard items from the images of its records
(no conditions, no positions kept), which is exact while an item's records arrive in
order. A range the mapping gave up breaks that order once the mapping went on: a newer
record of the same item was projected since, and it deleted only what *its* old image
projected. Replaying the range alone would put the range's (older) image back over the
newer one. So for every source item of the range that the stream shows changed after it
(on the range's shard or a shard split from it), the item's newer records are replayed
right after the range, in stream order: batch after batch the handler then applies the
item's records one by one up to the newest, which deletes every key an image of the range
or after it projected and puts the newest image's (``docs/projection.md``, "Why the
dashboard converges"): an item's newest image always wins.

The newest record is the newest the stream holds when the run reads it: disable the
mapping first, or a record written during the redrive can be projected before the
redrive puts the image before it (the next change of that item corrects it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from streamagg_projection.handler import Runtime, build_runtime, handle

from .deployment import Deployment
from .errors import StreamReadError
from .messages import FailedRange
from .replay import InProcessTarget, Target
from .run import Check, Redrive, Report, Say
from .stream import RecordFilter, StreamRanges, lambda_record

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

PACKAGE = "streamagg_projection"
LOST = ("Their changes are missing from the dashboard table: their items keep the image "
        "before the range until the source item changes again")
TAIL_EMPTY_PAGES = 5
"""Empty pages in a row that end the read of an open shard's newest records."""
EMPTY_PAGE_PAUSE = 0.1


def source_item(record: Mapping[str, Any]) -> str:
    """The record's source item: its table key, canonical."""
    return json.dumps(record["dynamodb"].get("Keys", {}), sort_keys=True)


class ProjectionPipeline(StreamRanges):
    """The projection's ranges: read from the source table's stream, extended by the
    touched items' newer records, replayed through its handler."""

    lost = LOST

    def __init__(self, *, streams: DynamoDBStreamsClient, target: Target,
                 filters: Mapping[str, RecordFilter], region: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(streams, filters=filters, region=region, sleep=sleep)
        self._streams = streams
        self.target = target

    def check(self, failed: FailedRange, records: list[dict[str, Any]], say: Say) -> Check:
        touched = {source_item(r) for r in records}
        newer = self.select(failed, [r for r in self._after(failed)
                                     if source_item(r) in touched])
        changed = {source_item(r) for r in newer}
        say(f"    {len(touched)} source item(s) in the range; {len(changed)} changed after "
            f"it: " + (f"their {len(newer)} newer record(s) are replayed after the range, so "
                       "each ends at its newest image" if changed else
                       "the range's images are the newest"))
        return Check(replay=records + newer, detail={"items": len(touched),
                                                     "changed_since": len(changed),
                                                     "newer_records": len(newer)})

    def _after(self, failed: FailedRange) -> Iterator[dict[str, Any]]:
        """The records after the range: its shard's, then those of shards split from it."""
        yield from self._shard(failed, failed.shard_id, after=failed.end)
        for shard_id in self._descendants(failed):
            yield from self._shard(failed, shard_id, after=None)

    def _descendants(self, failed: FailedRange) -> list[str]:
        shards: list[Any] = []
        arguments: dict[str, Any] = {"StreamArn": failed.stream_arn}
        try:
            while True:
                description = self._streams.describe_stream(**arguments)["StreamDescription"]
                shards.extend(description.get("Shards", []))
                last = description.get("LastEvaluatedShardId")
                if not last:
                    break
                arguments["ExclusiveStartShardId"] = last
        except (ClientError, BotoCoreError) as exc:
            raise StreamReadError(f"DescribeStream: {exc}") from exc
        family, found = {failed.shard_id}, []
        for shard in shards:  # a parent is listed before its children
            if shard.get("ParentShardId") in family:
                family.add(shard["ShardId"])
                found.append(shard["ShardId"])
        return found

    def _shard(self, failed: FailedRange, shard_id: str, after: str | None
               ) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {"StreamArn": failed.stream_arn, "ShardId": shard_id}
        if after is None:
            arguments["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            arguments.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        try:
            iterator = self._streams.get_shard_iterator(**arguments).get("ShardIterator")
            empty = 0
            while iterator and empty < TAIL_EMPTY_PAGES:
                page = self._streams.get_records(ShardIterator=iterator, Limit=1000)
                iterator = page.get("NextShardIterator")
                found = page.get("Records", [])
                if not found:
                    empty += 1
                    self._sleep(EMPTY_PAGE_PAUSE)
                    continue
                empty = 0
                for raw in found:
                    yield lambda_record(raw, stream_arn=failed.stream_arn, region=self._region)
        except (ClientError, BotoCoreError) as exc:
            raise StreamReadError(f"reading {shard_id} after the range: {exc}") from exc


def redrive(deployment: Deployment, sleep: Callable[[float], None] = time.sleep) -> Report:
    """Recover the projection stage's DLQ (see :mod:`redrive.run`)."""
    say, clients = deployment.say, deployment.clients
    mappings = deployment.stream_mappings("dynamodb")
    filters = {} if deployment.ignore_filters else {
        m["EventSourceArn"]: RecordFilter.from_criteria(m.get("FilterCriteria"))
        for m in mappings}
    say(f"redrive: projection; queue {deployment.queue_url}")
    say(f"         function {deployment.function_name}; dashboard "
        f"{deployment.environment.get('PROJECTION_DASHBOARD_TABLE_NAME', '(unknown)')}")
    deployment.describe_mappings(mappings, filters)
    if any(m.get("State") == "Enabled" for m in mappings):
        say("         note: the mapping is enabled, so a record written during the redrive "
            "can be projected before the image the redrive writes for its item (see "
            "docs/operations.md: stop the mapping first)")
    runtime: Runtime | None = None
    target: Target
    if deployment.invoke:
        target = deployment.invoke_target()
    else:
        runtime = local = build_runtime(deployment.handler_environment(),
                                        dynamodb=clients("dynamodb"))
        target = InProcessTarget(lambda event, now_ms: handle(event, local, now_ms=now_ms),
                                 PACKAGE)
    say(f"         replay: {target.description}")
    try:
        pipeline = ProjectionPipeline(streams=clients("dynamodbstreams"), target=target,
                                      filters=filters, region=deployment.region, sleep=sleep)
        return Redrive(sqs=clients("sqs"), queue_url=deployment.queue_url, pipeline=pipeline,
                       settings=deployment.settings, out=say, sleep=sleep).run()
    finally:
        if runtime is not None:
            runtime.pool.shutdown(wait=True)

