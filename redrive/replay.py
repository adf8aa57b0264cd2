"""Replaying stream records through a pipeline's handler, in batches, as the event source
mapping would.

Two targets: :class:`InProcessTarget` runs the pipeline's ``handle`` in this process with
the deployed function's environment (the operator's credentials write the results),
:class:`InvokeTarget` invokes the deployed function (``lambda:InvokeFunction`` is all the
operator needs). Either answers with the handler's partial batch response; a batch is
retried from the record it names, a bounded number of times. Records are DynamoDB or
Kinesis stream records alike (:func:`redrive.ranges.position`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from .errors import FunctionError
from .ranges import position

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

MAX_PAYLOAD_BYTES = 5_000_000
"""A synchronous invocation's request may hold 6 MB; batches stay under this."""
MAX_BACKOFF_SECONDS = 30.0


class Target(Protocol):
    description: str

    def __call__(self, records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        """The function's response to ``{"Records": records}``; raises FunctionError."""
        ...


Handle = Callable[[dict[str, Any], int], Mapping[str, Any]]
"""A pipeline's ``handle`` with its runtime bound: (event, now_ms) -> partial batch response."""


class InProcessTarget:
    """A pipeline's handler, run here with a runtime built from the function's environment."""

    def __init__(self, handle: Handle, package: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._handle = handle
        self._clock = clock
        self.description = (f"in-process: {package}.handler.handle with the function's "
                            "environment")

    def __call__(self, records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        try:
            return self._handle({"Records": list(records)}, int(self._clock() * 1000))
        except Exception as exc:  # anything the handler raises fails the batch
            raise FunctionError(f"the handler raised {type(exc).__name__}: {exc}") from exc


class InvokeTarget:
    """The deployed function, invoked synchronously with a Lambda-shaped stream event."""

    def __init__(self, client: LambdaClient, function_name: str) -> None:
        self._client = client
        self._function = function_name
        self.description = f"invoke: lambda Invoke of {function_name}"

    def __call__(self, records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        payload = json.dumps({"Records": list(records)}).encode()
        try:
            response = self._client.invoke(FunctionName=self._function,
                                           InvocationType="RequestResponse", Payload=payload)
        except (ClientError, BotoCoreError) as exc:
            raise FunctionError(f"Invoke failed: {exc}") from exc
        body = response["Payload"].read()
        if response.get("FunctionError"):
            raise FunctionError(f"function error ({response['FunctionError']}): "
                                f"{body[:500].decode(errors='replace')}")
        parsed = json.loads(body) if body else None
        return parsed if isinstance(parsed, dict) else {}


@dataclass
class ReplayOutcome:
    records: int = 0
    """Records that went through."""
    invocations: int = 0
    partial_failures: int = 0
    function_errors: int = 0
    stopped_at: str | None = None
    """Sequence number of the first record that did not go through; None on success."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.stopped_at is None


def batches(records: Sequence[Mapping[str, Any]], size: int,
            max_bytes: int = MAX_PAYLOAD_BYTES) -> Iterator[list[Mapping[str, Any]]]:
    """Consecutive batches of at most ``size`` records and about ``max_bytes`` of JSON."""
    batch: list[Mapping[str, Any]] = []
    used = 0
    for record in records:
        length = len(json.dumps(record)) + 2
        if batch and (len(batch) >= size or used + length > max_bytes):
            yield batch
            batch, used = [], 0
        batch.append(record)
        used += length
    if batch:
        yield batch


def replay(
    records: Sequence[Mapping[str, Any]],
    target: Target,
    *,
    batch_size: int,
    max_attempts: int,
    progress: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    backoff_seconds: float = 1.0,
) -> ReplayOutcome:
    """Send ``records`` through ``target`` in order; stop at the first batch that keeps failing.

    A partial batch response means the records before the one it names went through;
    the rest is retried. A function error retries the whole remainder. After
    ``max_attempts`` invocations of one batch the replay stops there: the records after
    it are not sent, since counting them first would move the snapshots' watermarks past
    the records that failed.
    """
    outcome = ReplayOutcome()
    planned = list(batches(records, batch_size))
    for number, batch in enumerate(planned, 1):
        pending: Sequence[Mapping[str, Any]] = batch
        label = f"batch {number}/{len(planned)}"
        for attempt in range(1, max_attempts + 1):
            outcome.invocations += 1
            try:
                response = target(pending)
            except FunctionError as exc:
                outcome.function_errors += 1
                failed_at, reason = 0, str(exc)
            else:
                index = first_failure(pending, response)
                if index is None:
                    outcome.records += len(pending)
                    progress(f"{label}: {len(pending)} records "
                             f"({position(pending[0])}..{position(pending[-1])})"
                             f" ok{'' if attempt == 1 else f' on attempt {attempt}'}"
                             f" [{outcome.records}/{len(records)}]")
                    break
                outcome.partial_failures += 1
                failed_at = index
                reason = (f"partial batch response: failed from "
                          f"{position(pending[index])}")
            outcome.records += failed_at
            pending = pending[failed_at:]
            if attempt == max_attempts:
                outcome.stopped_at = position(pending[0])
                outcome.error = reason
                progress(f"{label}: gave up after {attempt} attempt(s): {reason}")
                return outcome
            pause = min(backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
            progress(f"{label}: attempt {attempt} failed ({reason}); retrying "
                     f"{len(pending)} records in {pause:g} s")
            sleep(pause)
    return outcome


def first_failure(batch: Sequence[Mapping[str, Any]], response: Any) -> int | None:
    """Index of the record a partial batch response names (an unknown one: the first)."""
    failures = response.get("batchItemFailures") if isinstance(response, Mapping) else None
    if not failures:
        return None
    positions = {position(record): i for i, record in enumerate(batch)}
    return min(positions.get(str(f.get("itemIdentifier")), 0) for f in failures)
