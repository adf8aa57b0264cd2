"""``make demo``: the whole app, end to end, on a local AWS (moto's server).

1. synthesizes the CDK app with the CDK CLI (``npx cdk synth``);
2. starts moto's server on a free loopback port and deploys the synthesized stack into
   it, assets and all (``local_aws.deploy``);
3. writes realistic traffic with zae-limiter's own client (with a soft limit run into
   debt, a bucket the client doubles to four shards and a monthly quota), then removes
   the audit items by (emulated) TTL and by hand;
4. reads the table's stream and invokes the real handler, ``aggregator.handler.handler``,
   with the deployed function's environment, through a local event source mapping with
   the deployed mapping's settings;
5. prints the snapshot items, what zae-limiter's reader makes of them (tokens,
   overdraws, events), the sharded bucket's shards, what the client reads as available
   on the soft limit, the sharded bucket and the quota, the archive objects and the
   mapping's figures;
6.-8. then runs each other seed system's example stack the same way (deployed from the
   same assembly, its own traffic, its real handler; see ``local_aws/*_demo.py``),
   and exits non-zero if anything disagrees anywhere.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from local_aws.bundles_demo import run_demo as run_bundles_demo
from local_aws.deploy import DeployedStack, deploy_synthesized_stack
from local_aws.deployed import DeployedPipeline
from local_aws.event_source_mapping import Invoke
from local_aws.events_demo import run_demo as run_events_demo
from local_aws.projection_demo import run_demo as run_projection_demo
from local_aws.server import FAKE_CREDENTIALS, FAKE_REGION, MotoServer, client
from local_aws.traffic import Traffic, TtlEmulator, generate, remove_audit_items, zae_limiter
from streamagg_engine.bootstrap import LambdaEntry

ROOT = Path(__file__).resolve().parent.parent
DEMO_TABLE = "rate-limits"
STACK_PREFIXES = ("StreamAggregator", "EventMetrics", "Bundles", "SentimentProjection")
"""The app's stacks, by the name prefix ``app.py`` gives them."""
DEMO_SEED = 2026
DEMO_ACQUISITIONS = 80
OVERDRAWN_SUFFIX = "#od"
"""zae-limiter's ``{limit}#od`` snapshot counter (``schema.OVERDRAWN_COUNTER_SUFFIX``)."""
_SNAPSHOT_NUMBERS = {"total_events", "ttl"}
"""The numbers on a snapshot item that are not a limit's counter."""


def say(message: str) -> None:
    print(message, flush=True)


def synthesize(outdir: Path) -> dict[str, str]:
    """Run the CDK CLI as a user would; returns the stacks it made, by name prefix."""
    command = ["npx", "--no-install", "cdk", "synth", "--quiet", "--output", str(outdir),
               "--context", f"table_name={DEMO_TABLE}"]
    subprocess.run(command, cwd=ROOT, check=True)  # noqa: S603 - fixed argv, no shell
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = [name for name, artifact in manifest["artifacts"].items()
              if artifact["type"] == "aws:cloudformation:stack"]
    found = {prefix: name for prefix in STACK_PREFIXES for name in stacks
             if name.startswith(prefix + "-")}
    missing = sorted(set(STACK_PREFIXES) - set(found))
    if missing:
        raise SystemExit(f"no {', '.join(missing)} stack in {outdir}; it holds {stacks}")
    return found


def use_local_aws(endpoint_url: str) -> None:
    """Point every boto3 client of this process, the handler's too, at moto."""
    os.environ.update({
        "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": FAKE_REGION,
        "AWS_ENDPOINT_URL": endpoint_url,
    })
    os.environ.pop("AWS_PROFILE", None)


def run(args: argparse.Namespace) -> int:
    outdir = Path(args.output).resolve()
    say("== 1/8 synthesizing the app (4 stacks, npx cdk synth)")
    stacks = synthesize(outdir)
    with MotoServer() as moto:
        use_local_aws(moto.endpoint_url)
        problems = run_demo(outdir, stacks["StreamAggregator"], moto.endpoint_url, say,
                            seed=args.seed, acquisitions=args.acquisitions)

        say(f"\n== 6/8 Kinesis event metrics (seed 003): {stacks['EventMetrics']} on moto")
        problems += run_events_demo(outdir, stacks["EventMetrics"], moto.endpoint_url, say)

        say(f"\n== 7/8 S3-object bundles from SQS (seed 001): {stacks['Bundles']} on moto")
        problems += run_bundles_demo(outdir, stacks["Bundles"], moto.endpoint_url, say)

        say(f"\n== 8/8 projection (seed 004): {stacks['SentimentProjection']} on moto")
        problems += run_projection_demo(outdir, stacks["SentimentProjection"],
                                        moto.endpoint_url, say)
    if problems:
        say(f"\nFAILED: {problems} problem(s), see above")
        return 1
    say("\nOK: snapshots equal the traffic (overdraws, shards and the quota too), every "
        "removed audit item is archived once, the event counters equal their ground truth, "
        "every source object is in exactly one bundle, the dashboard equals the projection "
        "of its source table")
    return 0


def run_demo(assembly_dir: Path, stack_name: str, endpoint_url: str,
             say: Callable[[str], None], *, seed: int = DEMO_SEED,
             acquisitions: int = DEMO_ACQUISITIONS) -> int:
    """Steps 2-5 (the usage aggregator): deploy, write traffic, drive the handler, print,
    compare; returns the problems found. The process's AWS clients must point at moto."""
    say(f"== 2/8 deploying {stack_name} to moto at {endpoint_url}")
    stack = deploy_synthesized_stack(assembly_dir, stack_name, endpoint_url)
    say(f"   created {len(stack.resources)} resources; moto skips "
        f"{len(stack.skipped_resources)} it does not model "
        f"({', '.join(sorted(set(stack.skipped_resources.values())))})")

    say("== 3/8 writing traffic with zae-limiter's client")
    ddb = client("dynamodb", endpoint_url)
    limiter = zae_limiter(endpoint_url, stack.table_name, FAKE_REGION)
    traffic = generate(limiter, seed=seed, acquisitions=acquisitions, soft_acquisitions=12,
                       sharded_acquisitions=20, quota_acquisitions=10,
                       progress=lambda line: say(f"   {line}"))
    ttl = TtlEmulator()
    remove_audit_items(ddb, stack.table_name, traffic, ttl)
    say(f"   {traffic.acquisitions} acquisitions ({traffic.refunds} with refunds), "
        f"{traffic.audit_removed_by_ttl} audit items expired by TTL, "
        f"{traffic.audit_removed_by_hand} deleted by hand")

    say("== 4/8 invoking aggregator.handler.handler through the local event source mapping")
    log_path = assembly_dir / "demo-handler.log"
    problems = deliver(stack, endpoint_url, ttl, log_path, say)
    say("== 5/8 usage snapshots: results")
    problems += report(stack, endpoint_url, limiter, traffic, say)
    return problems


def deliver(stack: DeployedStack, endpoint_url: str, ttl: TtlEmulator, log_path: Path,
            say: Callable[[str], None]) -> int:
    pipeline = DeployedPipeline(stack, endpoint_url, log_path)

    def lambda_entry(env: dict[str, str]) -> Invoke:
        """``aggregator.handler.handler`` in a container of its own: a fresh entry point
        builds its runtime from this environment on its first call."""
        os.environ.update(env)
        from aggregator.handler import PIPELINE  # noqa: PLC0415 - after the environment is set

        handler = LambdaEntry(PIPELINE)
        return lambda event: handler(event, None)

    mapping = pipeline.stream_mapping(pipeline.invoke_with(lambda_entry),
                                      ttl_deleted_keys=ttl.is_ttl_delete)
    with pipeline.logs():
        figures = mapping.drain()
    settings = pipeline.settings
    say(f"   the handler's JSON logs are in {log_path}")
    say(f"   batch size {settings.batch_size}, bisect {settings.bisect_on_error}, "
        f"{settings.retry_attempts} retries: {figures.invocations} invocations, "
        f"{figures.records_delivered} records delivered, {figures.partial_failures} partial "
        f"failures, {figures.records_sent_to_dlq} records to the DLQ")
    depth = pipeline.messages_left()
    if depth:
        say(f"   !! the DLQ holds {depth} message(s)")
    return depth


def report(stack: DeployedStack, endpoint_url: str, limiter: Any, traffic: Traffic,
           say: Callable[[str], None]) -> int:
    """Print the snapshots, the reader's view, the feature buckets and the archive;
    returns how many of them disagree with the traffic."""
    ddb = client("dynamodb", endpoint_url)
    items = [item for page in ddb.get_paginator("scan").paginate(TableName=stack.table_name)
             for item in page["Items"]]
    snapshots = [item for item in items if item["SK"]["S"].startswith("#USAGE#")]
    say(f"\nSnapshot items in {stack.table_name} ({len(snapshots)}):")
    rows = sorted(
        (item["entity_id"]["S"], item["resource"]["S"], item["window"]["S"],
         item["window_start"]["S"], _counters(item, overdrawn=False),
         _counters(item, overdrawn=True), _number(item, "total_events"))
        for item in snapshots
    )
    table(say, [("entity", "resource", "window", "window_start", "tokens", "overdrawn",
                 "events"), *rows])
    problems = compare_reader(limiter, traffic, say)
    problems += check_feature_buckets(stack, items, limiter, traffic, say)
    return problems + check_archive(stack, endpoint_url, traffic, say)


def compare_reader(limiter: Any, traffic: Traffic, say: Callable[[str], None]) -> int:
    """zae-limiter's reader over the daily snapshots against the traffic, per limit
    (tokens, overdraws) and per bucket (events)."""
    say("\nzae-limiter's reader (daily snapshots: counters, overdrawn, total_events) "
        "against the traffic:")
    rows = []
    problems = 0
    for entity, resource in sorted({(e, r) for e, r, _ in traffic.tokens}):
        snapshots, _next = limiter.get_usage_snapshots(
            entity_id=entity, resource=resource, window_type="daily", limit=100)
        read: Counter[str] = Counter()
        overdrawn: Counter[str] = Counter()
        for snapshot in snapshots:
            read.update(snapshot.counters)
            overdrawn.update(snapshot.overdrawn)
        events_read = sum(snapshot.total_events for snapshot in snapshots)
        names = sorted({name for e, r, name in traffic.tokens if (e, r) == (entity, resource)}
                       | set(read))
        for name in names:
            key = (entity, resource, name)
            sent = (traffic.tokens[key], traffic.overdrawn[key])
            got = (read[name], overdrawn[name])
            problems += got != sent
            rows.append((entity, resource, name, str(sent[0]), str(got[0]), str(sent[1]),
                         str(got[1]), "ok" if got == sent else "MISMATCH"))
        events_sent = traffic.events[(entity, resource)]
        problems += events_read != events_sent
        rows.append((entity, resource, "(events)", str(events_sent), str(events_read), "", "",
                     "ok" if events_read == events_sent else "MISMATCH"))
    table(say, [("entity", "resource", "limit", "sent", "read", "overdrawn sent",
                 "overdrawn read", ""), *rows])
    return problems


def check_feature_buckets(stack: DeployedStack, items: Sequence[Mapping[str, Any]],
                          limiter: Any, traffic: Traffic, say: Callable[[str], None]) -> int:
    """The soft limit, the sharded bucket and the quota as the client reads them now,
    after the handler's maintenance: the shards it created and what ``available`` says."""
    problems = 0
    for entity, resource in sorted(traffic.shard_counts):
        count = traffic.shard_counts[(entity, resource)]
        prefix = f"{traffic.namespace_id}/BUCKET#{entity}#{resource}#"
        shards = {int(item["PK"]["S"][len(prefix):]): item for item in items
                  if item["PK"]["S"].startswith(prefix)}
        say(f"\nSharded bucket {entity} / {resource}: the client doubled it to {count} "
            f"shards; on the table ({stack.table_name}):")
        rows = [(str(shard), _number(item, "shard_count"),
                 *(_tokens(item, f"b_{name}_{field}") for name in ("rpm", "wcu")
                   for field in ("tc", "tk")))
                for shard, item in sorted(shards.items())]
        table(say, [("shard", "shard_count", "rpm used", "rpm held", "wcu used", "wcu held"),
                    *rows])
        expected = {str(shard): str(count) for shard in range(count)}
        if {row[0]: row[1] for row in rows} != expected:
            say(f"   !! expected shards 0-{count - 1}, each with shard_count {count}")
            problems += 1
    say("\nWhat the client reads as available now (limiter.available, every shard summed):")
    rows = []
    for bucket in traffic.special:
        available = limiter.available(bucket.entity, bucket.resource)[bucket.limit]
        low, high = traffic.available(bucket)
        verdict = "ok" if low <= available <= high else "MISMATCH"
        problems += verdict != "ok"
        rows.append((bucket.entity, bucket.resource, bucket.limit, str(bucket.capacity),
                     str(traffic.tokens[bucket.key]), f"{low}..{high}", str(available),
                     verdict))
    table(say, [("entity", "resource", "limit", "capacity", "used", "expected", "available",
                 ""), *rows])
    return problems


def check_archive(stack: DeployedStack, endpoint_url: str, traffic: Traffic,
                  say: Callable[[str], None]) -> int:
    bucket = stack.archive_bucket_name
    if not bucket:
        return 0
    s3 = client("s3", endpoint_url)
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    say(f"\nArchive objects in s3://{bucket} ({len(listing)}):")
    lines: Counter[str] = Counter()
    objects: list[tuple[str, str, str, str]] = []
    for obj in listing:
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        parsed = [json.loads(line) for line in body.splitlines()]
        lines.update(line["event_id"] for line in parsed)
        removals = Counter(line["removal"] for line in parsed)
        objects.append((obj["Key"], str(len(parsed)), str(obj["Size"]),
                        ", ".join(f"{n} {kind}" for kind, n in sorted(removals.items()))))
    table(say, [("key", "lines", "bytes", "removals"), *objects])
    removed = traffic.audit_removed_by_ttl + traffic.audit_removed_by_hand
    if len(lines) != removed or any(n != 1 for n in lines.values()):
        say(f"   !! {removed} audit items were removed, the archive holds {sum(lines.values())}"
            f" lines for {len(lines)} events")
        return 1
    return 0


def _counters(item: Mapping[str, Any], *, overdrawn: bool) -> str:
    """A snapshot's limit counters (or its ``{limit}#od`` overdraw counters), compact."""
    found = sorted((name, value["N"]) for name, value in item.items()
                   if "N" in value and name not in _SNAPSHOT_NUMBERS
                   and name.endswith(OVERDRAWN_SUFFIX) == overdrawn)
    return " ".join(f"{name}={value}" for name, value in found) or "-"


def _number(item: Mapping[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("N", "-"))


def _tokens(item: Mapping[str, Any], name: str) -> str:
    """A bucket's millitoken attribute in whole tokens."""
    raw = item.get(name, {}).get("N")
    return "-" if raw is None else str(int(raw) // 1000)


def table(say: Callable[[str], None], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        say("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths,
                                                                         strict=True)))
        if index == 0:
            say("  " + "  ".join("-" * width for width in widths))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_aws.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=DEMO_SEED,
                        help=f"traffic seed (default {DEMO_SEED})")
    parser.add_argument("--acquisitions", type=int, default=DEMO_ACQUISITIONS,
                        help=f"plain zae-limiter acquisitions to make (default "
                             f"{DEMO_ACQUISITIONS}; the feature buckets get theirs besides)")
    parser.add_argument("--output", default=str(ROOT / "cdk.out"),
                        help="cloud assembly directory (default ./cdk.out)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
