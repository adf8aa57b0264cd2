"""What the redrive tests share: traffic with its ground truth, a function, a DLQ, outages."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
import time
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aggregator.config import AggregatorConfig
from aggregator.handler import Runtime, handle
from local_aws.event_source_mapping import LocalEventSourceMapping, MappingSettings
from local_aws.server import client
from redrive.cli import main
from tests.factories import NS, audit_image, bucket_image, n
from tests.moto_fixtures import LocalAws

_ids = itertools.count(1)


@dataclass
class Traffic:
    """zae-limiter-shaped writes to a table, and what the snapshots must then hold."""

    aws: LocalAws
    table: str
    tokens: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(entity, limit) → net whole tokens consumed."""
    audit_event_ids: set[str] = field(default_factory=set)
    _started: set[str] = field(default_factory=set)

    def acquire(self, entity: str, tpm: int, *, resource: str = "gpt-4") -> None:
        """One acquire of ``tpm`` tokens (negative: a refund) and one request."""
        rpm = 1 if tpm > 0 else 0
        key = {"PK": {"S": f"{NS}/BUCKET#{entity}#{resource}#0"}, "SK": {"S": "#STATE"}}
        if entity not in self._started:
            self._started.add(entity)
            self.aws.ddb.put_item(TableName=self.table, Item=bucket_image(
                entity, resource, tc={"tpm": tpm * 1000, "rpm": rpm * 1000}))
        else:
            self.aws.ddb.update_item(
                TableName=self.table, Key=key,
                UpdateExpression="ADD b_tpm_tc :t, b_tpm_tk :k, b_rpm_tc :r",
                ExpressionAttributeValues={":t": n(tpm * 1000), ":k": n(-tpm * 1000),
                                           ":r": n(rpm * 1000)})
        self.tokens[(entity, "tpm")] += tpm
        self.tokens[(entity, "rpm")] += rpm

    def audit_removal(self, entity: str) -> str:
        """An audit item, written and then deleted by hand; its event id."""
        event_id = f"01JREDRIVE{next(_ids):016d}"
        item = audit_image(entity, event_id)
        self.aws.ddb.put_item(TableName=self.table, Item=item)
        self.aws.ddb.delete_item(TableName=self.table, Key={"PK": item["PK"], "SK": item["SK"]})
        self.audit_event_ids.add(event_id)
        return event_id

    def burst(self, entities: list[str], rounds: int, *, seed: int = 0) -> None:
        for i in range(rounds):
            for j, entity in enumerate(entities):
                amount = 100 + (seed * 37 + i * 13 + j * 7) % 900
                self.acquire(entity, -amount // 3 if (i + j) % 5 == 4 else amount)


def snapshot_tokens(aws: LocalAws, table: str, window: str = "hourly") -> Counter[tuple[str, str]]:
    """(entity, limit) → tokens, summed over the table's snapshot items of ``window``."""
    found: Counter[tuple[str, str]] = Counter()
    for item in aws.items(table):
        if item["SK"]["S"].startswith("#USAGE#") and item["window"]["S"] == window:
            for limit in ("tpm", "rpm"):
                if limit in item:
                    found[(item["entity_id"]["S"], limit)] += int(item[limit]["N"])
    return found


def archived_event_ids(aws: LocalAws, bucket: str) -> Counter[str]:
    lines: Counter[str] = Counter()
    for body in aws.objects(bucket).values():
        for line in gzip.decompress(body).decode().splitlines():
            lines[json.loads(line)["event_id"]] += 1
    return lines


def create_function(aws: LocalAws, env: Mapping[str, str],
                    handler: str = "aggregator.handler.handler") -> str:
    """A function in moto with a pipeline's handler and environment (its code is never
    run: the redrive reads which pipeline it is and its settings)."""
    name = f"{handler.split('.', maxsplit=1)[0]}-{next(_ids)}"
    role = client("iam", aws.endpoint_url).create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr(f"{handler.split('.', maxsplit=1)[0]}/__init__.py", "")
    client("lambda", aws.endpoint_url).create_function(
        FunctionName=name, Runtime="python3.12", Role=role,
        Handler=handler, Code={"ZipFile": code.getvalue()},
        Environment={"Variables": dict(env)})
    return name


def create_queue(aws: LocalAws) -> str:
    url: str = aws.sqs.create_queue(QueueName=f"dlq-{next(_ids)}")["QueueUrl"]
    return url


def queue_messages(aws: LocalAws, queue_url: str) -> list[dict[str, Any]]:
    """Every message in the queue (body parsed), left visible."""
    found: dict[str, dict[str, Any]] = {}
    receipts = []
    while True:
        messages = aws.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                           VisibilityTimeout=60).get("Messages", [])
        if not messages:
            break
        for message in messages:
            try:
                found[message["MessageId"]] = json.loads(message["Body"])
            except ValueError:
                found[message["MessageId"]] = {"body": message["Body"]}
            receipts.append(message["ReceiptHandle"])
    for receipt in receipts:
        aws.sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt,
                                          VisibilityTimeout=0)
    return list(found.values())


def send(aws: LocalAws, queue_url: str, bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        aws.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))


class Delivery:
    """A local event source mapping whose function can be down (an outage) or skipped."""

    def __init__(self, aws: LocalAws, stream_arn: str, runtime: Runtime, queue_url: str, *,
                 batch_size: int = 10) -> None:
        self.mode = "up"
        self._runtime = runtime

        def send(message: dict[str, Any]) -> None:
            aws.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))

        self.mapping = LocalEventSourceMapping(
            aws.streams, stream_arn, self._invoke,
            settings=MappingSettings(batch_size=batch_size, retry_attempts=1),
            on_failure=send, clock=time.time,
        )

    def _invoke(self, event: dict[str, Any]) -> Mapping[str, Any]:
        if self.mode == "down":
            raise RuntimeError("simulated outage: the function fails every invocation")
        return handle(event, self._runtime, now_ms=int(time.time() * 1000))

    def drain(self, mode: str = "up") -> int:
        """Deliver what is new in the stream; returns the records sent to the DLQ."""
        self.mode = mode
        before = self.mapping.report.records_sent_to_dlq
        self.mapping.drain()
        return self.mapping.report.records_sent_to_dlq - before


def config_for(table: str, bucket: str | None) -> AggregatorConfig:
    return AggregatorConfig(table_name=table, archive_bucket_name=bucket or "",
                            enable_archival=bucket is not None)


def run_redrive(endpoint_url: str, *argv: str, log: str = os.devnull) -> tuple[int, str]:
    """``python -m redrive`` in-process against moto; its exit status and report."""
    out = io.StringIO()
    code = main([*argv, "--region", "us-east-1", "--endpoint-url", endpoint_url,
                 "--wait-seconds", "0", "--handler-log", log], out=out)
    print(out.getvalue())  # the report, for `pytest -s`
    return code, out.getvalue()
