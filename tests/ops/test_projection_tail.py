"""The projection's redrive reads the newer records of the range's items on the range's
shard and on the shards split from it, and replays them right after the range."""

from __future__ import annotations

from typing import Any

from botocore.stub import Stubber

from redrive.projection import ProjectionPipeline
from redrive.ranges import position
from redrive.stream import lambda_record

from .test_replay import ScriptedTarget
from .test_stream import SHARD, STREAM, failed_range, get_records_record, seq, streams_client

CHILD = "shardId-00000001746014400000-child001"
GRANDCHILD = "shardId-00000001746028800000-grandchild"
OTHER = "shardId-00000001746000000000-other0001"


def keyed(sequence: str, item: str) -> dict[str, Any]:
    record = get_records_record(sequence)
    record["dynamodb"]["Keys"] = {"source_id": {"S": item}}
    return record


def test_newer_records_of_the_ranges_items_follow_it_across_a_shard_split() -> None:
    streams = streams_client()
    range_records = [keyed(seq(1), "a"), keyed(seq(2), "b")]
    with Stubber(streams) as stub:
        # The range's own shard, after its end: a newer record of "a", one of another item.
        stub.add_response("get_shard_iterator", {"ShardIterator": "it-1"}, {
            "StreamArn": STREAM, "ShardId": SHARD, "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
            "SequenceNumber": seq(2)})
        stub.add_response("get_records", {
            "Records": [keyed(seq(3), "a"), keyed(seq(4), "z")]})  # closed: no next iterator
        stub.add_response("describe_stream", {"StreamDescription": {
            "StreamArn": STREAM, "StreamStatus": "ENABLED", "Shards": [
                {"ShardId": SHARD, "SequenceNumberRange": {"StartingSequenceNumber": seq(0)}},
                {"ShardId": OTHER, "SequenceNumberRange": {"StartingSequenceNumber": seq(0)}},
                {"ShardId": CHILD, "ParentShardId": SHARD,
                 "SequenceNumberRange": {"StartingSequenceNumber": seq(10)}},
                {"ShardId": GRANDCHILD, "ParentShardId": CHILD,
                 "SequenceNumberRange": {"StartingSequenceNumber": seq(20)}}]}},
            {"StreamArn": STREAM})
        for shard, found in ((CHILD, [keyed(seq(11), "b")]), (GRANDCHILD, [keyed(seq(21), "a")])):
            stub.add_response("get_shard_iterator", {"ShardIterator": f"it-{shard}"}, {
                "StreamArn": STREAM, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"})
            stub.add_response("get_records", {"Records": found, "NextShardIterator": "more"})
            stub.add_response("get_records", {"Records": [], "NextShardIterator": "more"})
            stub.add_response("get_records", {"Records": []})  # the shard closed
        pipeline = ProjectionPipeline(streams=streams, target=ScriptedTarget(), filters={},
                                      region="us-east-1", sleep=lambda seconds: None)
        lines: list[str] = []
        shaped = [lambda_record(r, stream_arn=STREAM, region="us-east-1")
                  for r in range_records]
        check = pipeline.check(failed_range(seq(1), seq(2)), shaped, lines.append)
        stub.assert_no_pending_responses()
    assert [position(r) for r in check.replay] == [seq(1), seq(2), seq(3), seq(11), seq(21)]
    assert check.detail == {"items": 2, "changed_since": 2, "newer_records": 3}
    assert lines == ["    2 source item(s) in the range; 2 changed after it: their 3 newer "
                     "record(s) are replayed after the range, so each ends at its newest image"]
