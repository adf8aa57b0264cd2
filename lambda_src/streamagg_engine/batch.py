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
* :func:`isolate_rejected`: writes a request of several records so that one record
  DynamoDB refuses (a permanent :class:`StoreError`) is skipped, not the others with it.
* :class:`FirstSeen`: the same record delivered twice in one batch counts once.
* :func:`run_batch`: the invocation around a pipeline: start and completion logs with
  the processing time, one metrics line, the partial batch response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .errors import StoreError
from .logs import invocation_fields
from .metrics import BY_FUNCTION, emf_line

UNEXPECTED_SHAPES = (TypeError, ValueError, KeyError, AttributeError, IndexError,
                     ArithmeticError, RecursionError, OSError)
"""What pure decoding and planning can raise on a value no check foresaw; such a record
is skipped, so one odd record never blocks its shard. ``ValueError`` holds the Unicode
errors and ``ArithmeticError`` holds ``OverflowError`` and decimal's ``InvalidOperation``;
``OSError`` is what ``datetime.fromtimestamp`` raises on some platforms for a time out
of range (pure code does no I/O, so nothing else raises it here)."""

T = TypeVar("T")


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


class FirstSeen:
    """Remembers record identities (sequence number, event or message id) of a batch.

    Lambda may put the same stream record in a batch twice (a replayed range); its
    effect must count once, so the pipeline drops the copy and counts it as a duplicate.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def first(self, identity: str) -> bool:
        """True the first time ``identity`` is offered in this batch."""
        if identity in self._seen:
            return False
        self._seen.add(identity)
        return True


@dataclass
class Isolated:
    """What :func:`isolate_rejected` did: the results of the accepted parts, the items
    DynamoDB refused (each with its error), and how many requests it took."""

    results: list[Any] = field(default_factory=list)
    rejected: list[tuple[Any, StoreError]] = field(default_factory=list)
    requests: int = 0


def isolate_rejected(items: Sequence[T], write: Callable[[Sequence[T]], Any]) -> Isolated:
    """``write(items)``; if it is refused permanently, split the request in halves until
    each refused item stands alone, so the valid items sharing its request are written.

    A request of n items with one refused item costs about 2 log2(n) extra requests.
    Anything but a permanent :class:`StoreError` propagates unchanged (a retryable
    failure fails the whole request, as before; its writes are idempotent).
    """
    outcome = Isolated()
    pending: list[Sequence[T]] = [items]
    while pending:
        part = pending.pop()
        outcome.requests += 1
        try:
            outcome.results.append(write(part))
        except StoreError as exc:
            if not exc.permanent:
                raise
            if len(part) == 1:
                outcome.rejected.append((part[0], exc))
            else:
                middle = len(part) // 2
                pending += [part[middle:], part[:middle]]
    return outcome


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
        "event_id": loggable(record_id), **_loggable_values(extra), "reason": skip_reason(exc),
    })


def _loggable_values(extra: Mapping[str, Any]) -> dict[str, Any]:
    return {k: loggable(v) if isinstance(v, str) else v for k, v in extra.items()}


def loggable(text: str | None) -> str | None:
    """An id as a log line can carry it: one that is not valid Unicode (a hostile
    producer's) is logged as its escaped repr, or the log line itself would fail."""
    if text is None or text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return ascii(text)
    return text


def log_rejected(logger: logging.Logger, exc: StoreError, *, record_id: str | None,
                 **extra: Any) -> None:
    """One WARNING per record whose write DynamoDB refused for what it carried: the
    record is skipped like a malformed one (the same saved query finds both), with the
    error code that refused it."""
    logger.warning("skipped malformed record", extra={
        "event_id": loggable(record_id), **_loggable_values(extra), "error_code": exc.code,
        "reason": f"write refused: {exc}",
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
              function_name: str, now_ms: int,
              dimension_sets: Sequence[Sequence[str]] = BY_FUNCTION,
              ) -> dict[str, list[dict[str, str]]]:
    """One invocation: ``process`` the records, log and measure it, answer Lambda.

    An empty batch returns at once without calling ``process``. The completion line and
    the EMF line carry the same counts, so logs and metrics never disagree.
    """
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        # Not an event a mapping sends: nothing in it can ever be processed, so retrying
        # it could only block the source.
        if records is not None or not isinstance(event, Mapping):
            logger.warning("skipped malformed event: no Records list", extra={
                "event_type": type(event).__name__, "records_type": type(records).__name__})
        records = []
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
                   timestamp_ms=now_ms, counts=counts, properties=invocation_fields(),
                   dimension_sets=dimension_sets),
          flush=True)
    return failures.response()
