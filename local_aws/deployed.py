"""Drive a pipeline deployed into moto the way Lambda would run it.

Every part of ``make demo`` runs its stack's handler the same way: with the environment
the deployed function has, through a local event source mapping with the deployed
mapping's settings and filters, its JSON logs captured to a file, and at the end a check
that the dead-letter queue stayed empty. :class:`DeployedPipeline` holds those steps once;
a demo supplies only how its handler is called (``invoke_with``), since that is what
differs between pipelines.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from local_aws.deploy import DeployedStack
from local_aws.event_source_mapping import (
    DYNAMODB_STREAMS,
    Invoke,
    LocalEventSourceMapping,
    LocalQueueMapping,
    MappingSettings,
    RecordShape,
)
from local_aws.server import client


class DeployedPipeline:
    """One deployed stack's function and mapping, run locally against moto."""

    def __init__(self, stack: DeployedStack, endpoint_url: str, log_path: Path) -> None:
        self.stack = stack
        self.endpoint_url = endpoint_url
        self.log_path = log_path
        (self.mapping_spec,) = stack.event_source_mappings
        self.settings = MappingSettings.from_template(self.mapping_spec.properties)
        self._sqs = client("sqs", endpoint_url)
        log_path.write_text("")

    def environment(self) -> dict[str, str]:
        """The deployed function's environment variables, as Lambda would set them."""
        configuration = client("lambda", self.endpoint_url).get_function_configuration(
            FunctionName=self.stack.function_name)
        return dict(configuration["Environment"]["Variables"])

    def invoke_with(self, build: Callable[[dict[str, str]], Invoke],
                    environment: Mapping[str, str] | None = None) -> Invoke:
        """``build`` (deployed environment -> a call of the handler) with ``environment``
        laid over the deployed one."""
        return build({**self.environment(), **(environment or {})})

    def stream_mapping(self, invoke: Invoke, *, shape: RecordShape = DYNAMODB_STREAMS,
                       mapping: type[LocalEventSourceMapping] = LocalEventSourceMapping,
                       **options: Any) -> LocalEventSourceMapping:
        """The deployed stream mapping, local; failed batches go to the deployed DLQ.

        A DynamoDB mapping reads the table's stream itself (``drain``); a Kinesis one is
        handed the shard's records (``deliver``). ``mapping`` may be a subclass that adds
        delivery faults, ``options`` its extra arguments.
        """
        streams = client("dynamodbstreams", self.endpoint_url) \
            if shape is DYNAMODB_STREAMS else None
        return mapping(streams, self.mapping_spec.event_source_arn, invoke,
                       settings=self.settings, on_failure=self._to_dlq, clock=time.time,
                       shape=shape, **options)

    def queue_mapping(self, invoke: Invoke, **options: Any) -> LocalQueueMapping:
        """The deployed SQS mapping, local, polling the queue it reads."""
        queue_name = self.mapping_spec.event_source_arn.rsplit(":", 1)[-1]
        queue_url = self._sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        return LocalQueueMapping(self._sqs, queue_url, invoke, settings=self.settings,
                                 **options)

    @contextlib.contextmanager
    def logs(self) -> Iterator[None]:
        """The handler's stdout (its JSON logs and EMF lines), appended to the log file."""
        with self.log_path.open("a") as log, contextlib.redirect_stdout(log):
            yield

    def log_lines(self, containing: str) -> list[str]:
        """The captured lines that contain ``containing``."""
        return [line for line in self.log_path.read_text().splitlines() if containing in line]

    def messages_left(self, output: str = "DeadLetterQueueUrl") -> int:
        """Messages in a queue the stack outputs (visible or in flight); the DLQ by default."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.stack.output(output),
            AttributeNames=["ApproximateNumberOfMessages",
                            "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(value) for value in attributes.values())

    def _to_dlq(self, message: dict[str, Any]) -> None:
        self._sqs.send_message(QueueUrl=self.stack.queue_url, MessageBody=json.dumps(message))
