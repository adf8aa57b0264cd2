"""``python -m redrive``: recover the records behind the aggregator's DLQ messages.

Reads Lambda's on-failure messages from the dead-letter queue, reads each failed range
back from the table's stream (within the stream's 24 hours), replays the records through
the aggregator and deletes a message once its whole range went through. Safe to run
again: the snapshots' watermarks and the archive's deterministic keys make a replayed
record count once.

Examples::

    python -m redrive --stack-name StreamAggregator-prod --dry-run
    python -m redrive --stack-name StreamAggregator-prod
    python -m redrive --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/... \\
        --function-name StreamAggregator-prod-AggregatorFunction... --invoke

Exit status: 0 when every message taken was recovered and deleted (in a dry run: would
be), 1 when any is left in the queue (expired, shadowed, failed, held back), 2 for a
usage or configuration error.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TextIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from aggregator.config import AggregatorConfig
from aggregator.handler import build_runtime
from streamagg_engine.errors import ConfigError

from .errors import RedriveError
from .replay import InProcessTarget, InvokeTarget, Target
from .run import Redrive, Settings
from .stream import RecordFilter

PROG = "python -m redrive"
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5,
                        read_timeout=30)
_INVOKE_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5,
                        read_timeout=910)
"""A synchronous invocation can take the function's whole timeout (at most 900 s)."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_argument_group("what to redrive")
    where.add_argument("--stack-name", help="read FunctionName and DeadLetterQueueUrl from "
                       "this stack's outputs (e.g. StreamAggregator-prod)")
    where.add_argument("--queue-url", help="the dead-letter queue (DeadLetterQueueUrl)")
    where.add_argument("--function-name", help="the aggregator function (FunctionName)")
    where.add_argument("--region", help="AWS region (default: the SDK's configuration)")
    where.add_argument("--endpoint-url", help="another endpoint for every AWS call (moto)")
    how = p.add_argument_group("how")
    how.add_argument("--invoke", action="store_true", help="invoke the deployed function "
                     "instead of running the handler in this process")
    how.add_argument("--dry-run", action="store_true", help="read and report only: no "
                     "replay, no message deleted")
    how.add_argument("--batch-size", type=_positive, default=100, help="records per "
                     "invocation (default 100)")
    how.add_argument("--max-attempts", type=_positive, default=3, help="invocations of one "
                     "batch before its range is left for a later run (default 3)")
    how.add_argument("--max-messages", type=_positive, help="handle at most this many "
                     "messages, oldest ranges first (default: all)")
    how.add_argument("--discard-expired", action="store_true", help="delete the message of a "
                     "range the stream no longer (fully) has, after replaying what is left")
    how.add_argument("--discard-shadowed", action="store_true", help="delete the message of a "
                     "range whose shadowed records could not be replayed (see the report)")
    how.add_argument("--ignore-filters", action="store_true", help="replay every record of "
                     "a range, not only those the event source mapping's filter lets through")
    how.add_argument("--visibility-timeout", type=_positive, default=900, help="seconds the "
                     "run holds each message invisible (default 900)")
    how.add_argument("--wait-seconds", type=int, default=2, choices=range(21),
                     metavar="0..20", help="SQS long polling while reading the queue "
                     "(default 2; 0 is short polling, which can miss messages)")
    how.add_argument("--handler-log", type=Path, help="write the handler's JSON log and metric "
                     "lines here (default: standard error)")
    return p


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    out = out or sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        return _run(args, say)
    except (RedriveError, ConfigError, ClientError, BotoCoreError) as exc:
        say(f"error: {exc}")
        return 2


def _run(args: argparse.Namespace, say: Any) -> int:
    session = boto3.session.Session(region_name=args.region)
    if session.region_name is None:
        raise RedriveError("no region: pass --region or configure one for the AWS SDK")

    def client(service: str, config: Config = _CLIENT_CONFIG) -> Any:
        return session.client(service, endpoint_url=args.endpoint_url,  # type: ignore[call-overload]
                              config=config)

    queue_url, function_name = args.queue_url, args.function_name
    if args.stack_name:
        outputs = _stack_outputs(client("cloudformation"), args.stack_name)
        queue_url = queue_url or outputs.get("DeadLetterQueueUrl")
        function_name = function_name or outputs.get("FunctionName")
    if not queue_url or not function_name:
        raise RedriveError("give --stack-name, or both --queue-url and --function-name")

    lambda_client = client("lambda")
    function = lambda_client.get_function_configuration(FunctionName=function_name)
    env = dict(function.get("Environment", {}).get("Variables", {}))
    config = AggregatorConfig.from_env(env)
    mappings = _stream_mappings(lambda_client, function_name)
    filters = {} if args.ignore_filters else {
        m["EventSourceArn"]: RecordFilter.from_criteria(m.get("FilterCriteria"))
        for m in mappings}
    dynamodb = client("dynamodb")
    say(f"redrive: queue {queue_url}")
    say(f"         function {function_name}; snapshots in {config.snapshot_table}")
    for mapping in mappings:
        source = mapping["EventSourceArn"]
        say(f"         mapping {mapping.get('UUID')} ({mapping.get('State')}) on {source}; "
            + ("filter ignored" if args.ignore_filters else
               f"replayed through its filter: {filters[source].describe()}"))
        if mapping.get("State") == "Enabled":
            say("         note: the mapping is enabled, so newer records keep being counted; "
                "a range may be shadowed (see docs/operations.md: disable it first)")
    settings = Settings(
        batch_size=args.batch_size, max_attempts=args.max_attempts,
        max_messages=args.max_messages, dry_run=args.dry_run,
        discard_expired=args.discard_expired, discard_shadowed=args.discard_shadowed,
        hold_seconds=args.visibility_timeout, wait_seconds=args.wait_seconds,
    )
    with _handler_output(args.handler_log) as handler_log, \
            contextlib.redirect_stdout(handler_log):
        target: Target
        runtime = None
        if args.invoke:
            target = InvokeTarget(client("lambda", _INVOKE_CONFIG), function_name)
        else:
            # Built inside the redirect: the handler's JSON logger writes to handler_log.
            runtime = build_runtime({**env, "AWS_LAMBDA_FUNCTION_NAME": function_name},
                                    dynamodb=dynamodb, s3=client("s3"))
            target = InProcessTarget(runtime)
        say(f"         replay: {target.description}")
        try:
            report = Redrive(
                sqs=client("sqs"), queue_url=queue_url, streams=client("dynamodbstreams"),
                dynamodb=dynamodb, config=config, target=target, filters=filters,
                region=session.region_name, settings=settings, out=say,
            ).run()
        finally:
            if runtime is not None:
                runtime.pool.shutdown(wait=True)
    return report.exit_code


def _stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def _stream_mappings(lambda_client: Any, function_name: str) -> list[dict[str, Any]]:
    """The function's DynamoDB stream event source mappings."""
    found: list[dict[str, Any]] = []
    for page in lambda_client.get_paginator("list_event_source_mappings").paginate(
            FunctionName=function_name):
        found.extend(m for m in page.get("EventSourceMappings", [])
                     if ":dynamodb:" in m.get("EventSourceArn", ""))
    return found


@contextlib.contextmanager
def _handler_output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stderr
        return
    with path.open("a", encoding="utf-8") as log:
        yield log


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value
