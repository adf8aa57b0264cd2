"""Local stand-ins for Lambda's event source mappings: streams (DynamoDB, Kinesis), SQS.

moto streams a table's changes but cannot run its own event source mapping without
Docker, so this reads the stream from moto's server (or takes Lambda-shaped records) and
invokes the handler the way Lambda does: batches of ``batch_size`` per shard, in order; a
partial batch response checkpoints before the reported record and retries from it; a
function error bisects the batch (when enabled) and retries; after ``retry_attempts``
retries, or once a record is older than ``max_record_age_seconds``, the batch's
*metadata* (shard, sequence range, never the records) goes to the on-failure
destination, exactly like Lambda's.

Both stream types share these rules; they differ only in where a record keeps its
position, its arrival time and its ordering key (:class:`RecordShape`).

:class:`LocalQueueMapping` is Lambda's SQS poller: receive, invoke, delete what the partial
batch response does not name; the rest comes back after the visibility timeout. Every
mapping first applies the deployed ``FilterCriteria`` (:mod:`local_aws.filters`): a record
no filter matches never reaches the function (a stream skips it, a queue deletes it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from local_aws.filters import Filters
from local_aws.stream_records import TTL_IDENTITY
from redrive.stream import lambda_record

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

Invoke = Callable[[dict[str, Any]], Mapping[str, Any] | None]
"""Calls the function with a Lambda event; raises for a function error."""
OnFailure = Callable[[dict[str, Any]], None]
"""Receives Lambda's on-failure destination message."""


@dataclass(frozen=True)
class RecordShape:
    """Where one stream type's Lambda records keep what the mapping reads."""

    body: str
    """The record's stream-specific part: ``dynamodb`` or ``kinesis``."""
    position: str
    """Its sequence number, the identifier a partial batch response names."""
    arrival: str
    """Its arrival time in epoch seconds, which ``MaximumRecordAgeInSeconds`` measures."""
    batch_info: str
    """The on-failure message's key for the batch's metadata."""
    order_key: Callable[[Mapping[str, Any]], str]
    """What Lambda keeps in order across ``ParallelizationFactor`` lanes."""

    def position_of(self, record: Mapping[str, Any]) -> str:
        return str(record[self.body][self.position])

    def arrival_of(self, record: Mapping[str, Any]) -> float:
        return float(record[self.body][self.arrival])


def _item_key(record: Mapping[str, Any]) -> str:
    keys = record["dynamodb"]["Keys"]
    return "|".join(f"{k}={v}" for k, v in sorted(keys.items()))


DYNAMODB_STREAMS = RecordShape(body="dynamodb", position="SequenceNumber",
                               arrival="ApproximateCreationDateTime",
                               batch_info="DDBStreamBatchInfo", order_key=_item_key)
"""Ordered per item key."""
KINESIS = RecordShape(body="kinesis", position="sequenceNumber",
                      arrival="approximateArrivalTimestamp", batch_info="KinesisBatchInfo",
                      order_key=lambda record: str(record["kinesis"]["partitionKey"]))
"""Ordered per partition key."""


@dataclass(frozen=True)
class MappingSettings:
    batch_size: int = 100
    bisect_on_error: bool = True
    retry_attempts: int = 10
    """-1 retries until the record expires, as in Lambda."""
    max_record_age_seconds: int = -1
    """-1 keeps records until the stream drops them."""
    filters: Filters = Filters()

    @classmethod
    def from_template(cls, properties: Mapping[str, Any]) -> MappingSettings:
        """Read from an ``AWS::Lambda::EventSourceMapping``'s synthesized properties."""
        return cls(
            batch_size=int(properties.get("BatchSize", 100)),
            bisect_on_error=bool(properties.get("BisectBatchOnFunctionError", False)),
            retry_attempts=int(properties.get("MaximumRetryAttempts", -1)),
            max_record_age_seconds=int(properties.get("MaximumRecordAgeInSeconds", -1)),
            filters=Filters.from_template(properties),
        )


@dataclass
class MappingReport:
    invocations: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    records_delivered: int = 0
    records_sent_to_dlq: int = 0
    records_filtered: int = 0
    """Records no filter matched: never delivered (a queue deleted them)."""
    batch_sizes: list[int] = field(default_factory=list)


class LocalEventSourceMapping:
    """``streams`` (a DynamoDB Streams client) serves :meth:`drain`; without one, hand a
    shard's Lambda-shaped records to :meth:`deliver` (for Kinesis, always)."""

    def __init__(
        self,
        streams: DynamoDBStreamsClient | None,
        stream_arn: str,
        invoke: Invoke,
        *,
        settings: MappingSettings,
        on_failure: OnFailure,
        clock: Callable[[], float],
        ttl_deleted_keys: Callable[[Mapping[str, Any]], bool] = lambda keys: False,
        region: str = "us-east-1",
        function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:local",
        shape: RecordShape = DYNAMODB_STREAMS,
    ) -> None:
        self._streams = streams
        self._stream_arn = stream_arn
        self._invoke = invoke
        self._settings = settings
        self._on_failure = on_failure
        self._clock = clock
        self._is_ttl_delete = ttl_deleted_keys
        self._region = region
        self._function_arn = function_arn
        self._shape = shape
        self._checkpoints: dict[str, str] = {}
        self.report = MappingReport()

    def drain(self) -> MappingReport:
        """Deliver every record in the DynamoDB stream after the checkpoints, shard by shard."""
        for shard_id, records in self._read_shards():
            self.deliver(shard_id, records)
            self._checkpoints[shard_id] = self._shape.position_of(records[-1])
        return self.report

    def deliver(self, shard_id: str, records: Sequence[dict[str, Any]]) -> MappingReport:
        """Deliver one shard's Lambda-shaped records as the mapping would: those the
        filters keep, in batches."""
        kept = [record for record in records if self._settings.filters.keeps(record)]
        self.report.records_filtered += len(records) - len(kept)
        self.deliver_batches(shard_id, kept)
        return self.report

    def deliver_batches(self, shard_id: str, records: Sequence[dict[str, Any]]) -> None:
        """Cut ``records`` into batches and deliver each; a subclass may run lanes."""
        for batch in self.batches(records):
            self._deliver(shard_id, batch, retries_used=0)

    def batches(self, records: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
        """How records are cut into batches; a subclass may cut them differently."""
        size = self._settings.batch_size
        for start in range(0, len(records), size):
            yield records[start:start + size]

    def invoke(self, batch: Sequence[dict[str, Any]]) -> Mapping[str, Any] | None:
        """One invocation; a subclass may deliver the same batch more than once."""
        return self._invoke({"Records": list(batch)})

    def _read_shards(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        if self._streams is None:
            raise RuntimeError("no streams client: use deliver() with records instead")
        description = self._streams.describe_stream(StreamArn=self._stream_arn)
        for shard in description["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            after = self._checkpoints.get(shard_id)
            iterator_args: dict[str, Any] = (
                {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
                if after else {"ShardIteratorType": "TRIM_HORIZON"}
            )
            iterator = self._streams.get_shard_iterator(
                StreamArn=self._stream_arn, ShardId=shard_id, **iterator_args
            ).get("ShardIterator")
            records: list[dict[str, Any]] = []
            while iterator:
                page = self._streams.get_records(ShardIterator=iterator, Limit=1000)
                if not page["Records"]:
                    break
                records.extend(self.to_lambda_record(r) for r in page["Records"])
                iterator = page.get("NextShardIterator")
            if records:
                yield shard_id, records

    def to_lambda_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A GetRecords record in the shape Lambda hands to the function.

        The conversion is the redrive's (:func:`redrive.stream.lambda_record`); only the
        TTL identity, which moto never sets, is added here.
        """
        converted = lambda_record(record, stream_arn=self._stream_arn, region=self._region)
        if "userIdentity" not in converted and record["eventName"] == "REMOVE" and \
                self._is_ttl_delete(converted["dynamodb"].get("Keys", {})):
            converted["userIdentity"] = dict(TTL_IDENTITY)
        return converted

    def _deliver(self, shard_id: str, batch: Sequence[dict[str, Any]], retries_used: int) -> int:
        """Deliver ``batch`` until it succeeds or is given up; returns retries used."""
        pending = list(batch)
        while pending:
            pending = self._drop_expired(shard_id, pending, retries_used)
            if not pending:
                return retries_used
            self.report.invocations += 1
            self.report.batch_sizes.append(len(pending))
            try:
                response = self.invoke(pending)
            except Exception:  # noqa: BLE001 - any exception is what Lambda calls a function error
                self.report.function_errors += 1
                if self._exhausted(retries_used):
                    self._give_up(shard_id, pending, "RetryAttemptsExhausted", retries_used)
                    return retries_used
                retries_used += 1
                if self._settings.bisect_on_error and len(pending) > 1:
                    middle = len(pending) // 2
                    retries_used = self._deliver(shard_id, pending[:middle], retries_used)
                    return self._deliver(shard_id, pending[middle:], retries_used)
                continue
            failed_at = self._first_failure(pending, response)
            if failed_at is None:
                self.report.records_delivered += len(pending)
                return retries_used
            self.report.partial_failures += 1
            self.report.records_delivered += failed_at
            pending = pending[failed_at:]
            if self._exhausted(retries_used):
                self._give_up(shard_id, pending, "RetryAttemptsExhausted", retries_used)
                return retries_used
            retries_used += 1
        return retries_used

    def _first_failure(self, batch: Sequence[dict[str, Any]], response: Any) -> int | None:
        """Index of the reported record; an unknown or empty identifier fails the batch."""
        failures = (response or {}).get("batchItemFailures") if isinstance(response, dict) \
            else None
        if not failures:
            return None
        positions = {self._shape.position_of(r): i for i, r in enumerate(batch)}
        return min(positions.get(str(f.get("itemIdentifier")), 0) for f in failures)

    def _exhausted(self, retries_used: int) -> bool:
        limit = self._settings.retry_attempts
        return limit >= 0 and retries_used >= limit

    def _drop_expired(self, shard_id: str, batch: list[dict[str, Any]],
                      retries_used: int) -> list[dict[str, Any]]:
        max_age = self._settings.max_record_age_seconds
        if max_age < 0:
            return batch
        now = self._clock()
        expired = [r for r in batch if now - self._shape.arrival_of(r) > max_age]
        if expired:
            self._give_up(shard_id, expired, "RecordAgeExceeded", retries_used)
        return [r for r in batch if r not in expired]

    def _give_up(self, shard_id: str, batch: Sequence[dict[str, Any]], condition: str,
                 retries_used: int) -> None:
        self.report.records_sent_to_dlq += len(batch)
        shape = self._shape
        first, last = shape.position_of(batch[0]), shape.position_of(batch[-1])
        self._on_failure({
            "requestContext": {
                "requestId": f"local-{first}",
                "functionArn": self._function_arn,
                "condition": condition,
                "approximateInvokeCount": retries_used + 1,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                                "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": datetime.fromtimestamp(self._clock(), tz=UTC).isoformat(),
            shape.batch_info: {
                "shardId": shard_id,
                "startSequenceNumber": first,
                "endSequenceNumber": last,
                "approximateArrivalOfFirstRecord": _iso(shape.arrival_of(batch[0])),
                "approximateArrivalOfLastRecord": _iso(shape.arrival_of(batch[-1])),
                "batchSize": len(batch),
                "streamArn": self._stream_arn,
            },
        })


def _iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).isoformat()


def sqs_record(message_id: str, body: str, *, receive_count: int = 1,
               queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:ingest") -> dict[str, Any]:
    """An SQS message as Lambda hands it to the function."""
    return {
        "messageId": message_id, "receiptHandle": f"handle-{message_id}-{receive_count}",
        "body": body, "md5OfBody": "", "messageAttributes": {},
        "attributes": {"ApproximateReceiveCount": str(receive_count),
                       "SentTimestamp": "1774996200000", "SenderId": "AIDAEXAMPLE",
                       "ApproximateFirstReceiveTimestamp": "1774996200001"},
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": "us-east-1",
    }


def receive_lambda_event(sqs: Any, queue_url: str, queue_arn: str, *,
                         max_messages: int = 10) -> dict[str, Any]:
    """Receive from a (moto) SQS queue and shape the messages as Lambda's SQS event."""
    response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=max_messages,
                                   MessageSystemAttributeNames=["All"], WaitTimeSeconds=0)
    records = []
    for message in response.get("Messages", []):
        record = sqs_record(message["MessageId"], message["Body"], queue_arn=queue_arn,
                            receive_count=int(message["Attributes"]["ApproximateReceiveCount"]))
        record["receiptHandle"] = message["ReceiptHandle"]
        record["md5OfBody"] = message["MD5OfBody"]
        record["attributes"].update(message["Attributes"])
        records.append(record)
    return {"Records": records}


def delete_succeeded(sqs: Any, queue_url: str, event: Mapping[str, Any],
                     response: Mapping[str, Any]) -> int:
    """What Lambda's SQS poller does with a partial batch response; returns deletions."""
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    entries = [{"Id": str(index), "ReceiptHandle": record["receiptHandle"]}
               for index, record in enumerate(event["Records"])
               if record["messageId"] not in failed]
    if entries:
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    return len(entries)


class LocalQueueMapping:
    """Lambda's SQS poller over a (moto) queue, until the queue has nothing visible.

    Each receive takes at most ``receive_limit`` messages (never more than the mapping's
    batch size: a poller may hand over fewer than a full batch). ``deliveries`` says how
    often the n-th batch is handed to the function before it is settled, for showing what
    an SQS redelivery does.
    """

    def __init__(self, sqs: SQSClient, queue_url: str, invoke: Invoke, *,
                 settings: MappingSettings, receive_limit: int | None = None,
                 deliveries: Callable[[int], int] = lambda batch: 1) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self._invoke = invoke
        self._settings = settings
        self._limit = min(settings.batch_size, receive_limit or settings.batch_size, 10)
        self._deliveries = deliveries
        self.report = MappingReport()

    def drain(self) -> MappingReport:
        batch = 0
        while True:
            event = receive_lambda_event(self._sqs, self._queue_url, self._queue_arn,
                                         max_messages=self._limit)
            if not event["Records"]:
                return self.report
            kept = [r for r in event["Records"] if self._settings.filters.keeps(r)]
            dropped = len(event["Records"]) - len(kept)
            self.report.records_filtered += dropped
            if dropped:
                delete_succeeded(self._sqs, self._queue_url, {"Records": [
                    r for r in event["Records"] if r not in kept]}, {"batchItemFailures": []})
            if not kept:
                continue
            batch += 1
            response: Mapping[str, Any] = {"batchItemFailures": []}
            for _ in range(self._deliveries(batch)):
                self.report.invocations += 1
                self.report.batch_sizes.append(len(kept))
                response = self._invoke({"Records": kept}) or {"batchItemFailures": []}
            failed = len(response["batchItemFailures"])
            self.report.partial_failures += bool(failed)
            self.report.records_delivered += len(kept) - failed
            delete_succeeded(self._sqs, self._queue_url, {"Records": kept}, response)
