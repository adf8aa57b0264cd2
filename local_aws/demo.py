"""``make demo``: the whole app, end to end, on a local AWS (moto's server).

1. synthesizes the CDK app with the CDK CLI (``npx cdk synth``);
2. starts moto's server on a free loopback port and deploys the synthesized stack into
   it, assets and all (``local_aws.deploy``);
3. writes realistic traffic with zae-limiter's own client, then removes the audit items
   by (emulated) TTL and by hand;
4. reads the table's stream and invokes the real handler, ``aggregator.handler.handler``,
   with the deployed function's environment, through a local event source mapping with
   the deployed mapping's settings;
5. prints the snapshot items, what zae-limiter's reader makes of them, the archive
   objects and the mapping's figures;
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
from collections.abc import Mapping, Sequence
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

ROOT = Path(__file__).resolve().parent.parent
DEMO_TABLE = "rate-limits"
STACK_PREFIXES = ("StreamAggregator", "EventMetrics", "Bundles", "SentimentProjection")
"""The app's stacks, by the name prefix ``app.py`` gives them."""


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
    stack_name = stacks["StreamAggregator"]
    with MotoServer() as moto:
        use_local_aws(moto.endpoint_url)
        say(f"== 2/8 deploying {stack_name} to moto at {moto.endpoint_url}")
        stack = deploy_synthesized_stack(outdir, stack_name, moto.endpoint_url)
        say(f"   created {len(stack.resources)} resources; moto skips "
            f"{len(stack.skipped_resources)} it does not model "
            f"({', '.join(sorted(set(stack.skipped_resources.values())))})")

        say("== 3/8 writing traffic with zae-limiter's client")
        ddb = client("dynamodb", moto.endpoint_url)
        limiter = zae_limiter(moto.endpoint_url, stack.table_name, FAKE_REGION)
        traffic = generate(limiter, seed=args.seed, acquisitions=args.acquisitions,
                           progress=lambda line: say(f"   {line}"))
        ttl = TtlEmulator()
        remove_audit_items(ddb, stack.table_name, traffic, ttl)
        say(f"   {traffic.acquisitions} acquisitions ({traffic.refunds} with refunds), "
            f"{traffic.audit_removed_by_ttl} audit items expired by TTL, "
            f"{traffic.audit_removed_by_hand} deleted by hand")

        say("== 4/8 invoking aggregator.handler.handler through the local event source mapping")
        failures = deliver(stack, moto.endpoint_url, ttl, outdir / "demo-handler.log")
        say("== 5/8 usage snapshots: results")
        problems = report(stack, moto.endpoint_url, limiter, traffic)
        problems += failures

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
    say("\nOK: snapshots equal the traffic, every removed audit item is archived once, "
        "the event counters equal their ground truth, every source object is in exactly "
        "one bundle, the dashboard equals the projection of its source table")
    return 0


def deliver(stack: DeployedStack, endpoint_url: str, ttl: TtlEmulator, log_path: Path) -> int:
    pipeline = DeployedPipeline(stack, endpoint_url, log_path)

    def lambda_entry(env: dict[str, str]) -> Invoke:
        os.environ.update(env)
        from aggregator.handler import handler  # noqa: PLC0415 - after the environment is set

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


def report(stack: DeployedStack, endpoint_url: str, limiter: Any, traffic: Traffic) -> int:
    ddb = client("dynamodb", endpoint_url)
    items = [item for page in ddb.get_paginator("scan").paginate(TableName=stack.table_name)
             for item in page["Items"] if item["SK"]["S"].startswith("#USAGE#")]
    say(f"\nSnapshot items in {stack.table_name} ({len(items)}):")
    rows = sorted(
        (item["entity_id"]["S"], item["resource"]["S"], item["window"]["S"],
         item["window_start"]["S"], _number(item, "rpm"), _number(item, "tpm"),
         _number(item, "total_events"))
        for item in items
    )
    table([("entity", "resource", "window", "window_start", "rpm", "tpm", "events"), *rows])

    problems = 0
    say("\nzae-limiter's reader (get_usage_summary, daily windows) against the traffic:")
    checks = []
    for entity, resource in sorted({(e, r) for e, r, _ in traffic.tokens}):
        summary = limiter.get_usage_summary(entity_id=entity, resource=resource,
                                            window_type="daily")
        expected = {name: traffic.tokens[(entity, resource, name)] for name in ("rpm", "tpm")}
        got = {name: summary.total.get(name, 0) for name in ("rpm", "tpm")}
        verdict = "ok" if got == expected else "MISMATCH"
        problems += verdict != "ok"
        checks.append((entity, resource, str(expected["rpm"]), str(got["rpm"]),
                       str(expected["tpm"]), str(got["tpm"]), verdict))
    table([("entity", "resource", "rpm sent", "rpm read", "tpm sent", "tpm read", ""), *checks])

    bucket = stack.archive_bucket_name
    if bucket:
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
        table([("key", "lines", "bytes", "removals"), *objects])
        removed = traffic.audit_removed_by_ttl + traffic.audit_removed_by_hand
        if len(lines) != removed or any(n != 1 for n in lines.values()):
            say(f"   !! {removed} audit items were removed, the archive holds {sum(lines.values())}"
                f" lines for {len(lines)} events")
            problems += 1
    return problems


def _number(item: Mapping[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("N", "-"))


def table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        say("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths,
                                                                         strict=True)))
        if index == 0:
            say("  " + "  ".join("-" * width for width in widths))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_aws.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2026, help="traffic seed (default 2026)")
    parser.add_argument("--acquisitions", type=int, default=120,
                        help="zae-limiter acquisitions to make (default 120)")
    parser.add_argument("--output", default=str(ROOT / "cdk.out"),
                        help="cloud assembly directory (default ./cdk.out)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
