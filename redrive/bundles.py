"""The bundler's recovery: move its DLQ's messages back to the source queue.

The bundler reads S3 event messages from an SQS queue; a message that failed
``max_receive_count`` receives is moved to the DLQ by the queue's redrive policy, whole
(the message itself, not a range). Recovering it is sending it back: once the cause is
fixed, the bundler takes it like any message, and its claims table (kept
``idempotency_ttl_days``, longer than the queue and the DLQ keep a message) keeps an
object that a first attempt did bundle from being bundled twice.

The source queue is ``--source-queue-url``, else the stack's ``QueueUrl`` output, else
the one queue whose redrive policy names the DLQ (``ListDeadLetterSourceQueues``).
Messages move oldest first; each is sent (body and message attributes) before it is
deleted from the DLQ, so a run that stops half-way leaves a message in both queues at
worst, never in neither, and the claims make the copy harmless.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from .deployment import Deployment
from .errors import RedriveError
from .messages import iso
from .run import Outcome, QueueHold, Report, Say, Settings, Status

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

PACKAGE = "streamagg_bundles"
MESSAGE_ATTRIBUTE_TYPES = ("StringValue", "BinaryValue", "DataType")


def describe_body(body: str) -> str:
    """What an S3 event message announces, for the progress line."""
    try:
        document = json.loads(body)
    except ValueError:
        return "a body that is not JSON (the bundler logs and drops it)"
    if isinstance(document, dict) and document.get("Event") == "s3:TestEvent":
        return "S3's test event (the bundler drops it)"
    records = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(records, list) or not records:
        return "a body that is not an S3 event (the bundler logs and drops it)"
    objects = []
    for record in records:
        try:
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])
        except (KeyError, TypeError):
            objects.append("(a malformed record)")
            continue
        version = record["s3"]["object"].get("versionId")
        objects.append(f"s3://{bucket}/{key}" + (f" (version {version})" if version else ""))
    return f"{len(objects)} object(s): {', '.join(objects)}"


class MessageMove:
    """One run: every DLQ message (or the oldest ``max_messages``) back to the source."""

    def __init__(self, *, sqs: SQSClient, queue_url: str, source_url: str, settings: Settings,
                 out: Say) -> None:
        self._sqs = sqs
        self._queue = QueueHold(sqs, queue_url, settings)
        self._source = source_url
        self._settings = settings
        self._say = out

    def run(self) -> Report:
        settings = self._settings
        report = Report(dry_run=settings.dry_run)
        messages = sorted(self._queue.receive_all(), key=_sent)
        chosen = messages[:settings.max_messages] if settings.max_messages else messages
        later = messages[len(chosen):]
        self._say(f"{len(messages)} message(s) in the queue; moving {len(chosen)}, oldest "
                  f"first, to {self._source}"
                  + (" (dry run: nothing is moved or deleted)" if settings.dry_run else ""))
        for number, message in enumerate(chosen, 1):
            report.outcomes.append(self._move(number, len(chosen), message))
        for message in later:
            report.outcomes.append(Outcome(Status.LEFT_FOR_LATER, message["MessageId"]))
            self._queue.release(message["ReceiptHandle"])
        self._say("")
        self._say(report.summary(unit="message(s)", verb="moved", later=len(later)))
        return report

    def _move(self, number: int, total: int, message: dict[str, Any]) -> Outcome:
        message_id = message["MessageId"]
        attributes = message.get("Attributes", {})
        self._say(f"[{number}/{total}] message {message_id}: "
                  f"{describe_body(message.get('Body', ''))}; received "
                  f"{attributes.get('ApproximateReceiveCount', '?')} time(s) (this run's receive "
                  f"included), first sent "
                  f"{iso(_sent_at(message))}")
        if self._settings.dry_run:
            self._queue.release(message["ReceiptHandle"])
            self._say("    dry run: would move it to the source queue")
            return Outcome(Status.WOULD_MOVE, message_id, records=1)
        send: dict[str, Any] = {"QueueUrl": self._source, "MessageBody": message["Body"]}
        if message.get("MessageAttributes"):
            send["MessageAttributes"] = {
                name: {k: v for k, v in value.items() if k in MESSAGE_ATTRIBUTE_TYPES}
                for name, value in message["MessageAttributes"].items()}
        try:
            sent = self._sqs.send_message(**send)
        except (ClientError, BotoCoreError) as exc:
            self._queue.release(message["ReceiptHandle"])
            self._say(f"    FAILED to send it to the source queue: {exc}; left in the queue")
            return Outcome(Status.FAILED, message_id)
        self._queue.delete(message["ReceiptHandle"])
        self._say(f"    moved: sent as {sent['MessageId']}; deleted from the DLQ")
        return Outcome(Status.MOVED, message_id, records=1, deleted=True)


def _sent(message: dict[str, Any]) -> int:
    return int(message.get("Attributes", {}).get("SentTimestamp", 0))


def _sent_at(message: dict[str, Any]) -> datetime | None:
    millis = _sent(message)
    return datetime.fromtimestamp(millis / 1000, tz=UTC) if millis else None


def source_queue(sqs: SQSClient, queue_url: str) -> str:
    """The one queue whose redrive policy names ``queue_url``."""
    found = sqs.list_dead_letter_source_queues(QueueUrl=queue_url).get("queueUrls", [])
    if len(found) != 1:
        raise RedriveError(f"{len(found)} queues name {queue_url} as their dead-letter "
                           "queue; give --source-queue-url" + (f" ({', '.join(found)})"
                                                              if found else ""))
    return found[0]


def redrive(deployment: Deployment) -> Report:
    """Move the bundler's DLQ messages back to its source queue."""
    sqs = deployment.clients("sqs")
    source = (deployment.source_queue_url or deployment.outputs.get("QueueUrl")
              or source_queue(sqs, deployment.queue_url))
    deployment.say(f"redrive: bundler; queue {deployment.queue_url}")
    deployment.say(f"         its messages go back to {source}, where the bundler's claims "
                   "keep an object from being bundled twice")
    return MessageMove(sqs=sqs, queue_url=deployment.queue_url, source_url=source,
                       settings=deployment.settings, out=deployment.say).run()
