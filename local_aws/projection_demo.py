"""The projection's part of ``make demo``: seed 004 on moto, end to end.

Deploys the synthesized :class:`infra.stacks.projection_stack.ProjectionStack` into moto,
writes realistic items to its source table (pending then analysed, tag changes, a
re-score, a move back to pending, deletions, one malformed analysis), reads the table's
stream and invokes ``streamagg_projection.handler`` with the deployed function's
environment, through a local event source mapping with the deployed mapping's settings
and filters (:class:`local_aws.deployed.DeployedPipeline`). Then it prints the dashboard
per day and tag, queries both indexes, replays the whole stream once more (nothing may
change) and compares the dashboard with the projection of the source table's final state.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from local_aws.deploy import deploy_synthesized_stack
from local_aws.deployed import DeployedPipeline
from local_aws.event_source_mapping import Invoke
from local_aws.projection_harness import compare, expected_dashboard
from local_aws.server import client
from streamagg_projection.handler import build_runtime, handle

Say = Callable[[str], None]
DAY = "2026-03-02"
PREVIOUS_DAY = "2026-03-01"
PHASE_ONE = 8
"""Writes of :data:`SOURCE_STORY` made and projected before the rest."""


def run_demo(assembly_dir: Path, stack_name: str, endpoint_url: str, say: Say) -> int:
    """Deploy, write, project, compare; returns the number of problems found."""
    stack = deploy_synthesized_stack(assembly_dir, stack_name, endpoint_url)
    say(f"   deployed {stack_name}: {len(stack.resources)} resources "
        f"(source table {stack.table_name}, dashboard {stack.output('DashboardTableName')})")
    ddb = client("dynamodb", endpoint_url)
    source, dashboard = stack.table_name, stack.output("DashboardTableName")
    pipeline = DeployedPipeline(stack, endpoint_url,
                                Path(assembly_dir) / "projection-handler.log")
    driver = Driver(pipeline)
    first, second = SOURCE_STORY[:PHASE_ONE], SOURCE_STORY[PHASE_ONE:]
    malformed = write_source_items(ddb, source, first)
    say(f"   phase 1: {len(first)} source writes (inserts, pending -> analysed, "
        f"{malformed} malformed analysis); {driver.drain()}")
    say(f"   dashboard after phase 1: {len(scan(ddb, dashboard))} items")
    malformed += write_source_items(ddb, source, second)
    say(f"   phase 2: {len(second)} source writes (a tag dropped, a deletion, back to "
        f"pending, a re-score); {driver.drain()}")
    say(f"   handler logs in {pipeline.log_path}")
    items = scan(ddb, dashboard)
    show(items, say)
    show_indexes(ddb, dashboard, say)

    problems = 0
    expected = expected_dashboard(source_states(scan(ddb, source)))
    differences = compare(expected, items)
    if differences:
        say(f"   !! dashboard differs from the projection of the source table: "
            f"missing {sorted(differences.missing)}, stale {sorted(differences.stale)}, "
            f"wrong {sorted(differences.wrong)}")
        problems += len(differences.missing) + len(differences.stale) + len(differences.wrong)
    skipped = len(pipeline.log_lines('"skipped malformed record"'))
    if skipped != malformed:
        say(f"   !! {skipped} record(s) logged as malformed, expected {malformed}")
        problems += 1
    say(f"   replaying the whole stream from its start: {Driver(pipeline).drain()}")
    if scan(ddb, dashboard) != items:
        say("   !! replaying the whole stream changed the dashboard")
        problems += 1
    depth = pipeline.messages_left()
    if depth:
        say(f"   !! the projection's DLQ holds {depth} message(s)")
    problems += depth
    say(f"   {len(items)} dashboard items = the projection of the source table's final "
        f"state; the replay changed nothing" if not problems else
        f"   {problems} problem(s) in the projection")
    return problems


SOURCE_STORY: list[tuple[str, str, dict[str, Any]]] = [
    # (action, source_id, attributes); ingested_at is part of the source key
    ("put", "newsapi#eu-ai-act", {"ingested_at": f"{DAY}T08:15:00.000Z", "status": "pending"}),
    ("put", "newsapi#chip-rally", {"ingested_at": f"{DAY}T09:00:00.000Z", "status": "analyzed",
                                   "sentiment": "positive", "score": "0.91",
                                   "tags": ["AI", "markets"]}),
    ("put", "rss#flood-warning", {"ingested_at": f"{DAY}T09:30:00.000Z", "status": "analyzed",
                                  "sentiment": "negative", "score": "0.33",
                                  "tags": ["climate"]}),
    ("put", "rss#marathon", {"ingested_at": f"{PREVIOUS_DAY}T18:05:00.000Z",
                             "status": "analyzed", "sentiment": "positive", "score": "0.66",
                             "tags": ["sports", "health"]}),
    ("put", "newsapi#broken", {"ingested_at": f"{DAY}T10:00:00.000Z", "status": "analyzed",
                               "sentiment": "neutral", "tags": ["AI"]}),  # no score
    ("put", "rss#still-pending", {"ingested_at": f"{DAY}T10:30:00.000Z", "status": "pending"}),
    ("put", "newsapi#rate-cut", {"ingested_at": f"{DAY}T11:00:00.000Z", "status": "analyzed",
                                 "sentiment": "positive", "score": "0.58",
                                 "tags": ["markets", "europe"]}),
    ("put", "newsapi#eu-ai-act", {"ingested_at": f"{DAY}T08:15:00.000Z", "status": "analyzed",
                                  "sentiment": "neutral", "score": "0.72",
                                  "tags": ["AI", "regulation", "europe"]}),
    ("put", "newsapi#eu-ai-act", {"ingested_at": f"{DAY}T08:15:00.000Z", "status": "analyzed",
                                  "sentiment": "neutral", "score": "0.72",
                                  "tags": ["AI", "regulation"]}),  # drops the europe tag
    ("delete", "rss#flood-warning", {"ingested_at": f"{DAY}T09:30:00.000Z"}),
    ("put", "newsapi#rate-cut", {"ingested_at": f"{DAY}T11:00:00.000Z", "status": "pending",
                                 "tags": ["markets", "europe"]}),  # back to pending
    ("put", "newsapi#chip-rally", {"ingested_at": f"{DAY}T09:00:00.000Z", "status": "analyzed",
                                   "sentiment": "negative", "score": "0.12",
                                   "tags": ["AI", "markets"]}),  # re-scored
]


def write_source_items(ddb: Any, table: str,
                       story: Sequence[tuple[str, str, dict[str, Any]]]) -> int:
    """Play ``story`` on the source table; returns how many of its writes are malformed."""
    malformed = 0
    for action, source_id, attributes in story:
        key = {"source_id": {"S": source_id}, "ingested_at": {"S": attributes["ingested_at"]}}
        if action == "delete":
            ddb.delete_item(TableName=table, Key=key)
            continue
        item: dict[str, Any] = {**key, "status": {"S": attributes["status"]},
                                "source_type": {"S": source_id.split("#")[0]},
                                "source_url": {"S": f"https://example.com/{source_id}"},
                                "text_snippet": {"S": f"Story {source_id.split('#')[1]}"}}
        for name in ("sentiment",):
            if name in attributes:
                item[name] = {"S": attributes[name]}
        if "score" in attributes:
            item["score"] = {"N": attributes["score"]}
        elif attributes["status"] == "analyzed":
            malformed += 1
        if attributes.get("tags"):
            item["matched_tags"] = {"SS": attributes["tags"]}
        ddb.put_item(TableName=table, Item=item)
    return malformed


class Driver:
    """The deployed pipeline with a fresh mapping: it starts at the stream's horizon."""

    def __init__(self, pipeline: DeployedPipeline) -> None:
        def local_handler(env: dict[str, str]) -> Invoke:
            runtime = build_runtime(env, dynamodb=client("dynamodb", pipeline.endpoint_url))
            return lambda event: handle(event, runtime, now_ms=int(time.time() * 1000))

        self._pipeline = pipeline
        self._mapping = pipeline.stream_mapping(pipeline.invoke_with(local_handler))

    def drain(self) -> str:
        """Deliver what the stream holds after this mapping's checkpoints; a summary."""
        report = self._mapping.report
        before = (report.invocations, report.records_filtered)
        with self._pipeline.logs():
            self._mapping.drain()
        settings = self._pipeline.settings
        window = self._pipeline.mapping_spec.properties.get("MaximumBatchingWindowInSeconds")
        return (f"batch size {settings.batch_size}, window {window} s: "
                f"{report.invocations - before[0]} invocation(s), "
                f"{report.records_filtered - before[1]} record(s) dropped by the mapping's "
                f"filters, {report.partial_failures} partial failure(s), "
                f"{report.records_sent_to_dlq} record(s) to the DLQ")


def scan(ddb: Any, table: str) -> list[dict[str, Any]]:
    pages = ddb.get_paginator("scan").paginate(TableName=table)
    return sorted((item for page in pages for item in page["Items"]),
                  key=lambda i: json.dumps(i, sort_keys=True))


def source_states(items: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The source table's items as the plain states the ground truth is computed from."""
    states: dict[str, dict[str, Any]] = {}
    for item in items:
        state: dict[str, Any] = {name: item[name]["S"] for name in
                                 ("source_id", "ingested_at", "status", "sentiment")
                                 if name in item}
        if "score" in item:
            state["score"] = item["score"]["N"]
        state["tags"] = sorted(item.get("matched_tags", {}).get("SS", ()))
        states[f"{state['source_id']}|{state['ingested_at']}"] = state
    return states


def show(items: Sequence[Mapping[str, Any]], say: Say) -> None:
    by_day: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in items:
        by_day[item["day_partition"]["S"]].append(item)
    for day in sorted(by_day):
        rows = sorted(by_day[day], key=lambda i: i["sk"]["S"])
        base = [i for i in rows if "tag" not in i]
        say(f"   day {day}: {len(base)} item(s), {len(rows) - len(base)} tag item(s)")
        for item in base:
            listed = ",".join(sorted(item.get("matched_tags", {}).get("SS", ()))) or "-"
            say(f"     {item['ingested_at']['S']}  {item['source_id']['S']:<22} "
                f"{item['sentiment_score_combined']['S']:<14} tags {listed:<22} "
                f"expires_at {item['expires_at']['N']}")
        tags: dict[str, list[str]] = defaultdict(list)
        for item in rows:
            if "tag" in item:
                tags[item["tag"]["S"]].append(item["source_id"]["S"])
        for tag in sorted(tags):
            say(f"     tag {tag:<11} {', '.join(sorted(tags[tag]))}")


def show_indexes(ddb: Any, table: str, say: Say) -> None:
    positive = ddb.query(
        TableName=table, IndexName="by_sentiment", ScanIndexForward=False,
        KeyConditionExpression="day_partition = :d AND begins_with(sentiment_score_combined, :s)",
        ExpressionAttributeValues={":d": {"S": DAY}, ":s": {"S": "neutral#"}})["Items"]
    say(f"   by_sentiment, {DAY}, neutral, highest score first: "
        + (", ".join(f"{i['source_id']['S']} ({i['score']['N']})" for i in positive) or "none"))
    ai = ddb.query(TableName=table, IndexName="by_tag", KeyConditionExpression="tag = :t",
                   ExpressionAttributeValues={":t": {"S": "AI"}})["Items"]
    say("   by_tag, AI: " + (", ".join(f"{i['source_id']['S']} ({i['sentiment']['S']})"
                                       for i in ai) or "none"))
