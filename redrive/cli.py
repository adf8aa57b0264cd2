"""``python -m redrive``: recover what a pipeline's dead-letter queue holds.

Give the stack (``--stack-name``), or the DLQ (``--queue-url``) and, for a stream
pipeline, its function (``--function-name``). Which pipeline it is, is read from the
function's handler (``aggregator.*`` usage snapshots, ``streamagg_projection.*``
projection, ``streamagg_events.*`` event metrics, ``streamagg_bundles.*`` bundler); with
no function, a DLQ that is another queue's dead-letter target (its redrive policy) is the
bundler's. ``--pipeline`` says it outright.

* usage, projection: each on-failure message names a DynamoDB stream range; the range is
  read back from the table's stream (within its 24 hours) and replayed through the
  pipeline's handler. Usage: what the snapshot items say they counted makes a replayed
  record count once (the report says, per range, what it adds). Projection: a source
  item changed after the range also gets its newer records replayed, so the dashboard
  ends at its newest image.
* events: each message names a Kinesis shard range (``KinesisBatchInfo``); the range is
  read back from the stream and replayed; the event markers make a replay count once.
* bundler: each message is an S3 event message that ran out of receives; it is moved back
  to the source queue (``--source-queue-url``, else the stack's ``QueueUrl``, else the
  queue whose redrive policy names the DLQ), where the bundler's claims keep a bundled
  object from being bundled twice.

A message is deleted once its range went through (or it was moved). Every run prints a
line per message and per replayed batch, and a summary.

Examples::

    python -m redrive --stack-name StreamAggregator-prod --dry-run
    python -m redrive --stack-name EventMetrics-prod
    python -m redrive --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/... \\
        --function-name StreamAggregator-prod-AggregatorFunction... --invoke

Exit status: 0 when every message taken was recovered or moved and deleted (in a dry
run: would be), 1 when any is left in the queue (expired, failed, held back),
2 for a usage or configuration error.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TextIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from streamagg_engine.errors import ConfigError

from .deployment import CLIENT_CONFIG, Deployment
from .errors import RedriveError
from .run import Report, Say, Settings

PROG = "python -m redrive"
HANDLER_PACKAGES = {"aggregator": "usage", "streamagg_projection": "projection",
                    "streamagg_events": "events", "streamagg_bundles": "bundles"}
"""A function's handler package -> its pipeline, whose module is ``redrive.<pipeline>``
(imported when chosen: a run loads only its own pipeline's handler)."""
PIPELINES = tuple(sorted(HANDLER_PACKAGES.values()))
STREAM_PIPELINES = ("usage", "projection", "events")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_argument_group("what to redrive")
    where.add_argument("--stack-name", help="read FunctionName, DeadLetterQueueUrl (and the "
                       "bundler's QueueUrl) from this stack's outputs (e.g. "
                       "StreamAggregator-prod, EventMetrics-prod, SentimentProjection-prod, "
                       "Bundles-prod)")
    where.add_argument("--queue-url", help="the dead-letter queue (DeadLetterQueueUrl)")
    where.add_argument("--function-name", help="the pipeline's function (FunctionName); "
                       "needed for a stream pipeline, whose handler replays the ranges")
    where.add_argument("--source-queue-url", help="bundler: where DLQ messages go back to "
                       "(default: the stack's QueueUrl, or the queue whose redrive policy "
                       "names the DLQ)")
    where.add_argument("--pipeline", choices=PIPELINES, help="which pipeline the DLQ "
                       "belongs to (default: read from the function's handler, or, with no "
                       "function, the bundler when the DLQ is another queue's dead-letter "
                       "queue)")
    where.add_argument("--region", help="AWS region (default: the SDK's configuration)")
    where.add_argument("--endpoint-url", help="another endpoint for every AWS call (moto)")
    how = p.add_argument_group("how")
    how.add_argument("--invoke", action="store_true", help="stream pipelines: invoke the "
                     "deployed function instead of running its handler in this process")
    how.add_argument("--dry-run", action="store_true", help="read and report only: no "
                     "replay, no message moved or deleted")
    how.add_argument("--batch-size", type=_positive, default=100, help="records per "
                     "invocation (default 100)")
    how.add_argument("--max-attempts", type=_positive, default=3, help="invocations of one "
                     "batch before its range is left for a later run (default 3)")
    how.add_argument("--max-messages", type=_positive, help="handle at most this many "
                     "messages, oldest ranges first (default: all)")
    how.add_argument("--discard-expired", action="store_true", help="delete the message of a "
                     "range the stream no longer (fully) has, after replaying what is left")
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


def _run(args: argparse.Namespace, say: Say) -> int:
    session = boto3.session.Session(region_name=args.region)
    if session.region_name is None:
        raise RedriveError("no region: pass --region or configure one for the AWS SDK")

    def clients(service: str, config: Config = CLIENT_CONFIG) -> Any:
        return session.client(service, endpoint_url=args.endpoint_url,  # type: ignore[call-overload]
                              config=config)

    outputs = _stack_outputs(clients("cloudformation"), args.stack_name) \
        if args.stack_name else {}
    queue_url = args.queue_url or outputs.get("DeadLetterQueueUrl")
    function_name = args.function_name or outputs.get("FunctionName")
    if not queue_url:
        raise RedriveError("give --stack-name, or --queue-url (and --function-name for a "
                           "stream pipeline)")
    environment: dict[str, str] = {}
    handler = None
    if function_name:
        function = clients("lambda").get_function_configuration(FunctionName=function_name)
        environment = dict(function.get("Environment", {}).get("Variables", {}))
        handler = function.get("Handler")
    kind = args.pipeline or _detect(clients("sqs"), queue_url, function_name, handler)
    if kind in STREAM_PIPELINES and not function_name:
        raise RedriveError(f"the {kind} pipeline's ranges are replayed through its function: "
                           "give --function-name or --stack-name")
    settings = Settings(
        batch_size=args.batch_size, max_attempts=args.max_attempts,
        max_messages=args.max_messages, dry_run=args.dry_run,
        discard_expired=args.discard_expired,
        hold_seconds=args.visibility_timeout, wait_seconds=args.wait_seconds,
    )
    deployment = Deployment(
        clients=clients, region=session.region_name, queue_url=queue_url, settings=settings,
        say=say, function_name=function_name, environment=environment, outputs=outputs,
        source_queue_url=args.source_queue_url, invoke=args.invoke,
        ignore_filters=args.ignore_filters)
    # The handler's JSON logger writes to stdout, which goes to the handler log.
    with _handler_output(args.handler_log) as handler_log, \
            contextlib.redirect_stdout(handler_log):
        return _recover(kind, deployment).exit_code


def _recover(kind: str, deployment: Deployment) -> Report:
    report: Report = importlib.import_module(f"redrive.{kind}").redrive(deployment)
    return report


def _detect(sqs: Any, queue_url: str, function_name: str | None, handler: str | None) -> str:
    """The pipeline a DLQ belongs to: its function's handler package, else (no function)
    the bundler when another queue's redrive policy names the DLQ."""
    if function_name:
        package = (handler or "").split(".", 1)[0]
        if package not in HANDLER_PACKAGES:
            raise RedriveError(f"function {function_name}'s handler {handler!r} is none of "
                               f"the pipelines' ({', '.join(sorted(HANDLER_PACKAGES))}); "
                               "pass --pipeline")
        return HANDLER_PACKAGES[package]
    if sqs.list_dead_letter_source_queues(QueueUrl=queue_url).get("queueUrls"):
        return "bundles"
    raise RedriveError(f"no queue names {queue_url} in its redrive policy, so it is a stream "
                       "pipeline's on-failure destination: give --function-name (or "
                       "--stack-name)")


def _stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


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
