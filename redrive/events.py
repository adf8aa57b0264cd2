"""The event-metrics pipeline's recovery: read its Kinesis shard ranges back and replay
them through ``streamagg_events.handler``.

An on-failure message of a Kinesis mapping carries ``KinesisBatchInfo``: the shard and
the first and last sequence numbers of the batch Lambda gave up. The range is read with
``GetShardIterator(AT_SEQUENCE_NUMBER)`` and ``GetRecords`` (within the stream's
retention, 24 hours by default), put in the shape Lambda hands the function, and
replayed. Each event's marker (kept ``marker_ttl_days``) makes a replayed event count
once, so a range partly counted before Lambda gave up, or replayed twice, adds nothing
twice, and newer events counted since change nothing in what it adds.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamagg_events.handler import Runtime, build_runtime, handle

from .deployment import Deployment
from .errors import StreamReadError
from .messages import FailedRange
from .ranges import RangeRead, note_gaps
from .replay import InProcessTarget, Target
from .run import Check, Redrive, Report, Say
from .stream import RecordFilter, StreamRanges

PACKAGE = "streamagg_events"
LOST = ("Their events are missing from the counters, sums and unique users of their "
        "windows, and from the archive")
PAGE_LIMIT = 1000
MAX_EMPTY_PAGES = 25
"""Kinesis may answer an open shard with empty pages before records it holds; this many in
a row, with the range not finished, means the rest of the range is not there."""
EMPTY_PAGE_PAUSE = 0.2


def lambda_record(raw: Mapping[str, Any], *, shard_id: str, stream_arn: str,
                  region: str) -> dict[str, Any]:
    """A Kinesis ``GetRecords`` record (as boto3 returns it) in the shape Lambda delivers."""
    sequence = str(raw["SequenceNumber"])
    arrival = raw["ApproximateArrivalTimestamp"]
    return {
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": raw["PartitionKey"],
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(raw["Data"]).decode("ascii"),
                    "approximateArrivalTimestamp": arrival.timestamp()
                    if hasattr(arrival, "timestamp") else float(arrival)},
        "eventSource": "aws:kinesis", "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence}", "eventName": "aws:kinesis:record",
        "awsRegion": region, "eventSourceARN": stream_arn,
    }


def filter_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """What Lambda's filter patterns see of a Kinesis record: ``data`` decoded, parsed
    when it is JSON (a pattern on ``data`` never matches data that is not)."""
    try:
        text = base64.b64decode(str(record["kinesis"]["data"]), validate=True).decode()
        data: Any = json.loads(text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        data = None
    return {**record, "data": data}


def read_range(kinesis: Any, failed: FailedRange, *, region: str,
               sleep: Callable[[float], None] = time.sleep,
               max_empty_pages: int = MAX_EMPTY_PAGES) -> RangeRead:
    """``failed``'s records, first to last sequence number inclusive.

    Raises:
        StreamReadError: the stream could not be read (throttled past the SDK's retries,
            access denied, ...): nothing is known about the range.
    """
    result = RangeRead()
    start, end = int(failed.start), int(failed.end)
    iterator = _first_iterator(kinesis, failed, result)
    empty = 0
    while iterator:
        try:
            page = kinesis.get_records(ShardIterator=iterator, Limit=PAGE_LIMIT)
        except ClientError as exc:
            raise StreamReadError(f"GetRecords: {_code(exc)}: {exc}") from exc
        except BotoCoreError as exc:
            raise StreamReadError(f"GetRecords: {exc}") from exc
        iterator = page.get("NextShardIterator")
        found = page.get("Records", [])
        if not found:
            empty += 1
            if empty >= max_empty_pages or page.get("MillisBehindLatest") == 0:
                break
            sleep(EMPTY_PAGE_PAUSE)
            continue
        empty = 0
        done = False
        for raw in found:
            number = int(raw["SequenceNumber"])
            if number < start:
                continue
            if number > end:
                done = True
                break
            result.records.append(lambda_record(raw, shard_id=failed.shard_id,
                                                stream_arn=failed.stream_arn, region=region))
            done = number == end
        if done:
            break
    note_gaps(result, failed)
    return result


def _first_iterator(kinesis: Any, failed: FailedRange, result: RangeRead) -> str | None:
    # By name: the construct's stream is in the function's account, and moto's iterators
    # from StreamARN cannot be read.
    arguments = {"StreamName": failed.stream_arn.rpartition(":stream/")[2],
                 "ShardId": failed.shard_id}
    try:
        return str(kinesis.get_shard_iterator(
            **arguments, ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=failed.start)["ShardIterator"])
    except BotoCoreError as exc:
        raise StreamReadError(f"GetShardIterator: {exc}") from exc
    except ClientError as exc:
        code = _code(exc)
        if code == "ResourceNotFoundException":
            result.lost_head = result.lost_tail = (
                f"{code}: the stream or its shard no longer exists")
            return None
        if code != "InvalidArgumentException":
            raise StreamReadError(f"GetShardIterator: {code}: {exc}") from exc
        result.lost_head = (f"{code}: the range's first record is not in the stream any "
                            "more (past its retention)")
    try:
        return str(kinesis.get_shard_iterator(**arguments, ShardIteratorType="TRIM_HORIZON")
                   ["ShardIterator"])
    except (ClientError, BotoCoreError) as exc:
        raise StreamReadError(f"GetShardIterator: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class EventsPipeline(StreamRanges):
    """The event pipeline's ranges: read from its Kinesis stream, replayed through its
    handler (the event markers make a replay count once)."""

    lost = LOST

    def __init__(self, *, kinesis: Any, target: Target, filters: Mapping[str, RecordFilter],
                 region: str, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(kinesis, filters=filters, region=region, sleep=sleep,
                         reader=read_range, view=filter_view)
        self.target = target

    def check(self, failed: FailedRange, records: list[dict[str, Any]], say: Say) -> Check:
        say(f"    {len(records)} event record(s) to replay; each event's marker makes it "
            "count once (events counted before Lambda gave up are not counted again)")
        return Check(replay=records)


def redrive(deployment: Deployment, sleep: Callable[[float], None] = time.sleep) -> Report:
    """Recover the event-metrics pipeline's DLQ (see :mod:`redrive.run`)."""
    say, clients = deployment.say, deployment.clients
    mappings = deployment.stream_mappings("kinesis")
    filters = {} if deployment.ignore_filters else {
        m["EventSourceArn"]: RecordFilter.from_criteria(m.get("FilterCriteria"))
        for m in mappings}
    say(f"redrive: event metrics; queue {deployment.queue_url}")
    say(f"         function {deployment.function_name}; ranges read from Kinesis")
    deployment.describe_mappings(mappings, filters)
    runtime: Runtime | None = None
    target: Target
    if deployment.invoke:
        target = deployment.invoke_target()
    else:
        runtime = local = build_runtime(deployment.handler_environment(),
                                        dynamodb=clients("dynamodb"), s3=clients("s3"))
        target = InProcessTarget(lambda event, now_ms: handle(event, local, now_ms=now_ms),
                                 PACKAGE)
    say(f"         replay: {target.description}")
    try:
        pipeline = EventsPipeline(kinesis=clients("kinesis"), target=target, filters=filters,
                                  region=deployment.region, sleep=sleep)
        return Redrive(sqs=clients("sqs"), queue_url=deployment.queue_url, pipeline=pipeline,
                       settings=deployment.settings, out=say, sleep=sleep).run()
    finally:
        if runtime is not None:
            runtime.pool.shutdown(wait=True)
