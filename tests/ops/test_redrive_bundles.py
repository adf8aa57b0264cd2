"""The bundler recovered from its DLQ on moto: messages that ran out of receives while
the bundler was failing, newer objects bundled after them, then ``python -m redrive``
moves the messages back to the source queue and every object is in exactly one bundle."""

from __future__ import annotations

import itertools
import json
from typing import Any

from local_aws.bundles_harness import (
    TEST_EVENT_BODY,
    compare,
    create_claim_table,
    s3_event_body,
    upload_workload,
)
from local_aws.event_source_mapping import delete_succeeded, receive_lambda_event
from local_aws.server import MotoServer, client
from redrive.bundles import redrive
from redrive.deployment import Deployment
from redrive.run import Settings
from streamagg_bundles.config import BundlerConfig
from streamagg_bundles.handler import build_runtime, handle

from .support import run_redrive

_ids = itertools.count(1)
NOW_MS = 1_775_000_000_000
MAX_RECEIVES = 2


class BundlerDeployment:
    """Source buckets, a distribution bucket, a claims table, the source queue whose
    redrive policy names its DLQ, and the handler behind a local SQS poller."""

    def __init__(self, moto: MotoServer) -> None:
        url = self.url = moto.endpoint_url
        self.s3, self.ddb, self.sqs = client("s3", url), client("dynamodb", url), client("sqs", url)
        n = next(_ids)
        self.sources = (f"redrive-versioned-{n}", f"redrive-plain-{n}")
        self.distribution = f"redrive-distribution-{n}"
        for bucket in (*self.sources, self.distribution):
            self.s3.create_bucket(Bucket=bucket)
        for bucket in (self.sources[0], self.distribution):
            self.s3.put_bucket_versioning(Bucket=bucket,
                                          VersioningConfiguration={"Status": "Enabled"})
        table = f"redrive-claims-{n}"
        create_claim_table(self.ddb, table)
        self.dlq = self.sqs.create_queue(QueueName=f"redrive-bundles-dlq-{n}")["QueueUrl"]
        dlq_arn = self._arn(self.dlq)
        self.queue = self.sqs.create_queue(QueueName=f"redrive-bundles-{n}", Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                         "maxReceiveCount": MAX_RECEIVES})})["QueueUrl"]
        self.queue_arn = self._arn(self.queue)
        config = BundlerConfig(distribution_bucket_name=self.distribution,
                               idempotency_table_name=table, bundle_prefix="bundles/",
                               max_bundle_input_mb=1, max_bundle_objects=4)
        self.runtime = build_runtime(config.to_env(), dynamodb=self.ddb, s3=self.s3)

    def _arn(self, url: str) -> str:
        return str(self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])

    def announce(self, objects: list[Any], queue: str | None = None) -> None:
        for obj in objects:
            self.sqs.send_message(QueueUrl=queue or self.queue, MessageBody=s3_event_body([obj]))

    def failing(self) -> None:
        """The bundler fails every receive until the redrive policy moves the messages."""
        while self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10,
                                       VisibilityTimeout=0).get("Messages"):
            pass

    def drain(self) -> None:
        """Lambda's SQS poller with the bundler up: receive, invoke, delete what succeeded."""
        while True:
            event = receive_lambda_event(self.sqs, self.queue, self.queue_arn, max_messages=4)
            if not event["Records"]:
                return
            response = handle(event, self.runtime, now_ms=NOW_MS,
                              owner=f"request-{next(_ids)}")
            delete_succeeded(self.sqs, self.queue, event, response)

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                          "ApproximateNumberOfMessagesNotVisible"])
        return sum(int(v) for v in attributes["Attributes"].values())


def test_messages_that_ran_out_of_receives_go_back_and_are_bundled_once(
        moto: MotoServer) -> None:
    deployment = BundlerDeployment(moto)
    first = upload_workload(deployment.s3, seed=11, count=6, max_size=2048,
                            buckets=deployment.sources)
    deployment.announce(first)
    deployment.failing()
    assert deployment.depth(deployment.dlq) == len(first)
    newer = upload_workload(deployment.s3, seed=12, count=5, max_size=2048,
                            buckets=deployment.sources)
    deployment.announce(newer)
    deployment.drain()
    # A bundled object's message in the DLQ too (its deletion kept failing): no second bundle.
    deployment.announce(newer[:1], deployment.dlq)
    everything = first + newer
    assert compare(everything, deployment.s3, deployment.distribution).missing
    bundles_before = compare(everything, deployment.s3, deployment.distribution).bundles

    code, report = run_redrive(deployment.url, "--queue-url", deployment.dlq, "--dry-run")
    assert code == 0, report
    assert "redrive: bundler" in report
    assert f"its messages go back to {deployment.queue}" in report
    assert report.count("dry run: would move it") == len(first) + 1
    assert "object(s): s3://redrive-" in report
    assert deployment.depth(deployment.dlq) == len(first) + 1
    assert deployment.depth(deployment.queue) == 0

    code, report = run_redrive(deployment.url, "--queue-url", deployment.dlq)
    assert code == 0, report
    assert report.count("    moved: sent as ") == len(first) + 1
    assert f"summary: {len(first) + 1} moved; {len(first) + 1} message(s) moved" in report
    assert deployment.depth(deployment.dlq) == 0
    assert compare(everything, deployment.s3, deployment.distribution).bundles == bundles_before

    deployment.drain()
    assert not compare(everything, deployment.s3, deployment.distribution)
    assert deployment.depth(deployment.queue) == 0


def test_the_stacks_queue_output_names_the_source_queue(moto: MotoServer) -> None:
    """With the stack's ``QueueUrl`` output, no redrive policy is needed to find it."""
    sqs = client("sqs", moto.endpoint_url)
    n = next(_ids)
    dlq = sqs.create_queue(QueueName=f"output-dlq-{n}")["QueueUrl"]
    source = sqs.create_queue(QueueName=f"output-source-{n}")["QueueUrl"]
    sqs.send_message(QueueUrl=dlq, MessageBody=TEST_EVENT_BODY,
                     MessageAttributes={"origin": {"DataType": "String", "StringValue": "s3"}})
    lines: list[str] = []
    deployment = Deployment(
        clients=lambda service, config=None: client(service, moto.endpoint_url),
        region="us-east-1", queue_url=dlq, settings=Settings(wait_seconds=0),
        say=lines.append, outputs={"QueueUrl": source})
    assert redrive(deployment).exit_code == 0
    (moved,) = sqs.receive_message(QueueUrl=source, MessageAttributeNames=["All"])["Messages"]
    assert moved["Body"] == TEST_EVENT_BODY
    assert moved["MessageAttributes"]["origin"]["StringValue"] == "s3"
    assert f"its messages go back to {source}" in "\n".join(lines)
    assert "S3's test event (the bundler drops it)" in "\n".join(lines)
