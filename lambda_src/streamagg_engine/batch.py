"""What every pipeline of the engine shares, whatever its source.

A pipeline (usage snapshots, event metrics, bundles, projections) decodes its batch,
plans writes, runs them concurrently and hands back the records a failed write carried.
Three things are the same for all of them and live here, once:

* :class:`FailedRecords`: Lambda's partial batch response. Ordered sources (DynamoDB and
  Kinesis streams) checkpoint, so only the lowest failed position is reported and
  Lambda retries from there; unordered sources (SQS standard queues) report every
  failed message.
* :func:`log_skipped`: the one log line of a record that cannot be used, with its id.
* :func:`settle`: waits on submitted writes and routes each result or failure.
* :func:`run_batch`: the invocation around a pipeline: start and completion logs with
  the processing time, one metrics line, the partial batch response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import StoreError
from .logs import invocation_fields
from .metrics import emf_line

UNEXPECTED_SHAPES = (TypeError, ValueError, KeyError, AttributeError, IndexError)
"""What pure decoding can raise on a shape no check foresaw; such a record is skipped,
so one odd record never blocks its shard."""


@dataclass
class FailedRecords:
    """The records failed writes carried, as ``(position, identifier)`` pairs.

    ``position`` orders records within the batch (a zero-padded sequence number);
    ``identifier`` is what Lambda expects back (sequence number or SQS message id).
    """

    ordered: bool
    """True for streams: report only the first failure, Lambda retries from it."""
    carried: list[tuple[str, str]] = field(default_factory=list)

    def add(self, records: Iterable[tuple[str, str]]) -> None:
        self.carried.extend(records)

    @property
    def first(self) -> str | None:
        return min(self.carried)[1] if self.carried else None

    def identifiers(self) -> list[str]:
        if not self.carried:
            return []
        if self.ordered:
            return [min(self.carried)[1]]
        return sorted({identifier for _, identifier in self.carried})

    def response(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": i} for i in self.identifiers()]}


def skip_reason(exc: BaseException) -> str:
    """The logged reason of a skipped record: a check's own words, or the odd shape."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str):
        return reason
    return f"unexpected shape: {type(exc).__name__}: {exc}"


def log_skipped(logger: logging.Logger, exc: BaseException, *, record_id: str | None,
                **extra: Any) -> None:
    """One WARNING per skipped record, naming it; a traceback only for odd shapes."""
    logger.warning("skipped malformed record", exc_info=not hasattr(exc, "reason"), extra={
        "event_id": record_id, **extra, "reason": skip_reason(exc),
    })


Job = tuple["Future[Any]", Callable[[Any], None], Callable[[StoreError], None]]
"""A submitted write, what to do with its result, and what to do if it failed."""


def settle(jobs: Sequence[Job]) -> None:
    """Wait for every job; a StoreError goes to its failure callback, anything else raises."""
    for future, on_success, on_failure in jobs:
        try:
            value = future.result()
        except StoreError as exc:
            on_failure(exc)
        else:
            on_success(value)


def write_failed(logger: logging.Logger, failures: FailedRecords,
                 carried: Sequence[tuple[str, str]], kind: str,
                 target: str) -> Callable[[StoreError], None]:
    """The failure callback of a write: its records go back to Lambda, and one ERROR line."""
    def fail(exc: StoreError) -> None:
        failures.add(carried)
        logger.error(f"{kind} write failed; its records will be retried", extra={
            "target": target, "error_code": exc.code, "retryable": exc.retryable,
            "records": len(carried), "error": str(exc),
        })
    return fail


class BatchOutcome(Protocol):
    """What a pipeline's ``process_batch`` returns."""

    @property
    def failures(self) -> FailedRecords: ...

    def summary(self) -> dict[str, int]: ...


def run_batch(event: Mapping[str, Any], process: Callable[[Sequence[Any]], BatchOutcome], *,
              logger: logging.Logger, namespace: str, counts: Mapping[str, str],
              function_name: str, now_ms: int) -> dict[str, list[dict[str, str]]]:
    """One invocation: ``process`` the records, log and measure it, answer Lambda.

    An empty batch returns at once without calling ``process``. The completion line and
    the EMF line carry the same counts, so logs and metrics never disagree.
    """
    records = event.get("Records") or []
    if not records:
        logger.info("empty batch", extra={"record_count": 0, "processing_time_ms": 0.0})
        return {"batchItemFailures": []}
    started = time.perf_counter()
    logger.info("batch started", extra={"record_count": len(records)})
    result = process(records)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    summary = result.summary()
    failures = result.failures
    logger.info("batch completed", extra={
        **summary, "processing_time_ms": elapsed_ms,
        ("first_failed_sequence_number" if failures.ordered else "failed_message_ids"):
            failures.first if failures.ordered else failures.identifiers(),
    })
    print(emf_line(summary, elapsed_ms, namespace=namespace, function_name=function_name,
                   timestamp_ms=now_ms, counts=counts, properties=invocation_fields()),
          flush=True)
    return failures.response()
