"""The bundles part of ``make demo`` (seed 001): the synthesized ``BundlesStack`` on moto.

1. deploys the stack into moto (``local_aws.deploy``), without the bucket-notification
   custom resource (its handler is a Lambda, which moto's CloudFormation would have to
   run in Docker), then puts the buckets' versioning and replication directly (moto's
   CloudFormation ignores both);
2. uploads source objects to the ingest bucket (awkward keys, two versions of one key);
3. sends S3's event message for each object to the deployed queue (moto's own S3 events
   lack ``versionId`` and ``sequencer``), some twice, plus S3's test event and one
   malformed message;
4. receives the queue as Lambda's SQS event source does (the deployed mapping's settings
   and filters, :class:`local_aws.deployed.DeployedPipeline`) and invokes the real
   handler, ``streamagg_bundles.handler``, with the deployed function's environment,
   deleting the messages the partial batch response does not name; the second batch is
   handed to the handler twice before its deletion, as an SQS redelivery would;
5. prints the bundles (key, objects inside, sizes) and checks each object is in exactly
   one bundle and nothing is left in the queue or its DLQ.

moto does not replicate between buckets: the demo shows the replication rule the stack
put on the distribution bucket (the template tests pin the rule and the role).
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from local_aws.bundles_harness import TEST_EVENT_BODY, Uploaded, bundles, s3_event_body
from local_aws.deploy import DeployedStack, deploy_synthesized_stack
from local_aws.deployed import DeployedPipeline
from local_aws.event_source_mapping import Invoke, MappingReport
from local_aws.server import FAKE_ACCOUNT_ID, client
from streamagg_bundles.handler import build_runtime, handle
from streamagg_bundles.s3_events import object_identity

NOTIFICATIONS_TYPE = "Custom::S3BucketNotifications"
_KEYS = ("incoming/report 2026-03-31.csv", "incoming/a+b=c.json", "incoming/zoë/ünïcode.txt",
         "incoming/100% done.log", "incoming/deep/nested/path/part-0001.parquet",
         "incoming/report 2026-03-31.csv")
"""The last key repeats the first: a second version, so a second object to bundle."""
DUPLICATES = 2
REDELIVERED_BATCH = 2
"""The batch the demo hands to the handler twice."""
EVENT_TIME = datetime(2026, 3, 31, 23, 59, 58, tzinfo=UTC)
"""Two seconds before a day (and month) boundary: the bundles' hour partitions differ."""


def run_demo(assembly_dir: Path, stack_name: str, endpoint_url: str,
             say: Callable[[str], None]) -> int:
    """Deploy, feed, bundle and check; returns the number of problems found."""
    template = json.loads((assembly_dir / f"{stack_name}.template.json").read_text())
    with tempfile.TemporaryDirectory(prefix="bundles-demo-") as workdir:
        assembly, removed = _without_notifications(assembly_dir, stack_name, Path(workdir))
        stack = deploy_synthesized_stack(assembly, stack_name, endpoint_url)
    say(f"   deployed {stack_name}: {len(stack.resources)} resources; left out: "
        f"{removed} resources of the bucket-notification custom resource (its handler is "
        f"a Lambda moto would run in Docker); moto skips "
        f"{', '.join(sorted(set(stack.skipped_resources.values()))) or 'nothing'}")
    s3, sqs = client("s3", endpoint_url), client("sqs", endpoint_url)
    for line in _apply_bucket_settings(s3, template, stack):
        say(f"   {line}")
    say("   the ingest bucket's notification is not put: moto's S3 events carry no "
        "versionId or sequencer, which S3 always sends for a versioned bucket, so the "
        "demo sends S3's event documents itself")
    problems = _check_buckets(s3, stack, say)
    queue_url = stack.output("QueueUrl")
    objects = _upload(s3, stack.output("IngestBucketName"))
    say(f"   uploaded {len(objects)} object versions ({len({o.key for o in objects})} keys) "
        f"to s3://{stack.output('IngestBucketName')}/")
    sent = _announce(sqs, queue_url, objects)
    say(f"   queued {sent} messages: one per object, {DUPLICATES} announced twice, "
        "S3's s3:TestEvent and one malformed body")

    pipeline = DeployedPipeline(stack, endpoint_url, assembly_dir / "bundles-demo-handler.log")
    figures, failures = _deliver(pipeline)
    say(f"   {figures.invocations} invocations of streamagg_bundles.handler.handler "
        f"({REDELIVERED_BATCH - 1} batch delivered twice), {failures} message failures "
        f"reported; handler logs in {pipeline.log_path}")
    if figures.records_filtered:
        say(f"   the mapping's filters dropped {figures.records_filtered} message(s)")

    problems += _report_bundles(s3, stack.output("DistributionBucketName"), objects, say)
    for output in ("QueueUrl", "DeadLetterQueueUrl"):
        left = pipeline.messages_left(output)
        if left:
            say(f"   PROBLEM: {left} messages left in {output}")
            problems += 1
    skipped = sum(json.loads(line)["MessagesSkipped"]
                  for line in pipeline.log_lines('"MessagesSkipped"') if line.startswith("{"))
    if skipped != 1:
        say(f"   PROBLEM: {skipped} messages skipped as malformed, expected 1")
        problems += 1
    if not problems:
        say(f"   every one of the {len(objects)} objects is in exactly one bundle; the "
            "malformed message was logged and dropped; queue and DLQ are empty")
    return problems


def _report_bundles(s3: Any, distribution: str, objects: list[Uploaded],
                    say: Callable[[str], None]) -> int:
    """Print every bundle and its objects; count objects not in exactly one bundle."""
    problems = 0
    found: dict[str, int] = {}
    for key, versions, manifest in bundles(s3, distribution):
        size = s3.head_object(Bucket=distribution, Key=key)["ContentLength"]
        say(f"   s3://{distribution}/{key}  ({len(versions)} version, {size} bytes, "
            f"{sum(e['size'] for e in manifest['objects'])} bytes in)")
        for entry in manifest["objects"]:
            say(f"      {entry['member']}  {entry['key']!r:50} {entry['size']:>7} bytes  "
                f"version {entry['version_id'] or '-'}")
            identity = object_identity(entry["bucket"], entry["key"], entry["version_id"],
                                       entry["etag"])
            found[identity] = found.get(identity, 0) + 1
        if len(versions) != 1:
            say(f"   PROBLEM: {key} was written {len(versions)} times")
            problems += 1
    expected = {o.identity for o in objects}
    for obj in objects:
        if found.get(obj.identity, 0) != 1:
            say(f"   PROBLEM: {obj.key!r} ({obj.version_id}) is in "
                f"{found.get(obj.identity, 0)} bundles")
            problems += 1
    if set(found) - expected:
        say(f"   PROBLEM: {len(set(found) - expected)} bundled objects were never uploaded")
        problems += 1
    return problems


def _without_notifications(assembly_dir: Path, stack_name: str,
                           workdir: Path) -> tuple[Path, int]:
    """A copy of the assembly whose template has no bucket-notification custom resource
    (nor its handler function, role and policy)."""
    copy = workdir / "assembly"
    shutil.copytree(assembly_dir, copy)
    path = copy / f"{stack_name}.template.json"
    template = json.loads(path.read_text())
    resources: dict[str, Any] = template["Resources"]
    removed = {name for name, body in resources.items() if body["Type"] == NOTIFICATIONS_TYPE}
    handler_parts = {name for name in resources if name.startswith("BucketNotificationsHandler")}
    removed |= handler_parts
    removed |= {name for name, body in resources.items()
                if body["Type"] == "AWS::IAM::Policy" and "NotificationsHandler" in name}
    for name in removed:
        del resources[name]
    for body in resources.values():
        depends = body.get("DependsOn")
        if isinstance(depends, list):
            body["DependsOn"] = [d for d in depends if d not in removed]
        elif depends in removed:
            del body["DependsOn"]
    path.write_text(json.dumps(template))
    return copy, len(removed)


def _apply_bucket_settings(s3: Any, template: dict[str, Any],
                           stack: DeployedStack) -> list[str]:
    """Versioning and replication as the template sets them: moto's CloudFormation
    creates the buckets but ignores both properties, so they are put directly."""
    done = []
    resources = template["Resources"]
    for logical_id, body in resources.items():
        if body["Type"] != "AWS::S3::Bucket":
            continue
        properties = body.get("Properties", {})
        bucket = stack.resources[logical_id]
        versioning = properties.get("VersioningConfiguration")
        if versioning:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=versioning)
            done.append(f"versioning {versioning['Status']} on s3://{bucket} (put directly)")
        replication = properties.get("ReplicationConfiguration")
        if replication:
            role = stack.resources[replication["Role"]["Fn::GetAtt"][0]]
            rules = []
            for rule in replication["Rules"]:
                target = stack.resources[rule["Destination"]["Bucket"]["Fn::GetAtt"][0]]
                api_rule = {("ID" if name == "Id" else name): value
                            for name, value in rule.items()}  # the API spells it ID
                api_rule["Destination"] = {**rule["Destination"],
                                           "Bucket": f"arn:aws:s3:::{target}"}
                rules.append(api_rule)
            s3.put_bucket_replication(Bucket=bucket, ReplicationConfiguration={
                "Role": f"arn:aws:iam::{FAKE_ACCOUNT_ID}:role/{role}", "Rules": rules})
            done.append(f"replication of s3://{bucket} (put directly)")
    return done


def _check_buckets(s3: Any, stack: DeployedStack, say: Callable[[str], None]) -> int:
    distribution = stack.output("DistributionBucketName")
    archive = stack.output("ArchiveBucketName")
    problems = 0
    for bucket in (distribution, archive):
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
        if status != "Enabled":
            say(f"   PROBLEM: s3://{bucket} is not versioned ({status})")
            problems += 1
    rules = s3.get_bucket_replication(Bucket=distribution)["ReplicationConfiguration"]["Rules"]
    for rule in rules:
        say(f"   replication rule {rule.get('ID')!r}: s3://{distribution} -> "
            f"{rule['Destination']['Bucket']} ({rule['Status']}); moto stores the rule but "
            "does not replicate, so the archive bucket stays empty here")
    if not any(archive in rule["Destination"]["Bucket"] for rule in rules):
        say("   PROBLEM: no replication rule to the archive bucket")
        problems += 1
    return problems


def _upload(s3: Any, bucket: str) -> list[Uploaded]:
    uploaded = []
    for index, key in enumerate(_KEYS):
        body = f"{key}\n".encode() * (50 + 40 * index)
        response = s3.put_object(Bucket=bucket, Key=key, Body=body)
        uploaded.append(Uploaded(bucket, key, len(body), response["ETag"].strip('"'),
                                 response.get("VersionId"), f"{index:016X}",
                                 EVENT_TIME + timedelta(seconds=index)))
    return uploaded


def _announce(sqs: Any, queue_url: str, objects: list[Uploaded]) -> int:
    bodies = [TEST_EVENT_BODY] + [s3_event_body([obj]) for obj in objects]
    bodies += [s3_event_body([obj]) for obj in objects[:DUPLICATES]]
    bodies.append('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object"')
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    return len(bodies)


def _deliver(pipeline: DeployedPipeline) -> tuple[MappingReport, int]:
    """The queue through the deployed mapping; the second batch is handed over twice
    before it is settled, as an SQS redelivery would. Batches of at most 4 messages, so
    the few demo messages make several batches. Also returns the message failures the
    handler reported."""
    requests = itertools.count(1)
    failures: list[int] = []

    def local_handler(env: dict[str, str]) -> Invoke:
        runtime = build_runtime(env, dynamodb=client("dynamodb", pipeline.endpoint_url),
                                s3=client("s3", pipeline.endpoint_url))

        def invoke(event: dict[str, Any]) -> dict[str, Any]:
            response = handle(event, runtime, now_ms=int(time.time() * 1000),
                              owner=f"demo-{next(requests)}")
            failures.append(len(response["batchItemFailures"]))
            return response

        return invoke

    mapping = pipeline.queue_mapping(
        pipeline.invoke_with(local_handler), receive_limit=4,
        deliveries=lambda batch: 2 if batch == REDELIVERED_BATCH else 1)
    with pipeline.logs():
        return mapping.drain(), sum(failures)
