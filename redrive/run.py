"""One redrive run over a stream pipeline's DLQ: take the on-failure messages, replay their
ranges, settle each.

The loop is the same for every stream pipeline; what differs (which stream is read, which
records the mapping would have delivered, what the pipeline's own state says about a
replay, which handler runs) is a :class:`RangePipeline` (``redrive.usage``,
``redrive.projection``, ``redrive.events``).

Messages are taken off the queue first (held invisible for the run), ordered by stream
position (a shard's older range before its newer one), then handled one by one:

* read the range from the stream and keep the records the mapping's filter lets through;
* ask the pipeline what the replay will do (:meth:`RangePipeline.check`);
* replay the records (:mod:`redrive.replay`);
* delete the message only when its whole range went through; an expired range is
  deleted only with ``discard_expired``. Everything not deleted is made visible again
  at the end.

If a range fails, the later ranges of the same shard are held back: replaying a newer
range before an older one would apply the shard's changes out of order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from .errors import NotOnFailureMessageError, RedriveError
from .messages import FailedRange, age, iso, parse_on_failure
from .ranges import RangeRead, position
from .replay import Target, replay

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

Say = Callable[[str], None]


class Status(StrEnum):
    RECOVERED = "recovered"
    WOULD_RECOVER = "would recover"
    MOVED = "moved"
    WOULD_MOVE = "would move"
    EXPIRED = "expired"
    FAILED = "failed"
    HELD_BACK = "held back"
    NOT_ON_FAILURE = "not an on-failure message"
    LEFT_FOR_LATER = "left for a later run"


DONE = frozenset({Status.RECOVERED, Status.MOVED})
WOULD_BE_DONE = frozenset({Status.WOULD_RECOVER, Status.WOULD_MOVE})


@dataclass(frozen=True)
class Settings:
    batch_size: int = 100
    max_attempts: int = 3
    """Invocations of one batch before the range is given up for this run."""
    max_messages: int | None = None
    """Handle at most this many messages (the oldest ranges); None: all."""
    dry_run: bool = False
    discard_expired: bool = False
    hold_seconds: int = 900
    """Visibility timeout while the run holds a message."""
    wait_seconds: int = 2
    """Long polling when reading the queue (short polling can miss messages)."""
    backoff_seconds: float = 1.0


@dataclass
class Outcome:
    status: Status
    message_id: str
    failed: FailedRange | None = None
    records: int = 0
    """Records of the range replayed (or, in a dry run, that would be); messages moved."""
    deleted: bool = False
    check: object | None = None
    """What the pipeline's own state said about the range, when it was read."""


@dataclass
class Report:
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def exit_code(self) -> int:
        """0 when nothing the run took is left behind (in a dry run: would be), else 1."""
        done = WOULD_BE_DONE if self.dry_run else DONE
        return 0 if all(o.status in done or o.deleted for o in self.outcomes) else 1

    def summary(self, *, unit: str = "record(s)", verb: str = "replayed",
                later: int = 0) -> str:
        parts = [f"{self.count(status)} {status.value}" for status in Status
                 if self.count(status)]
        deleted = sum(1 for o in self.outcomes if o.deleted)
        kept = len(self.outcomes) - deleted
        return (f"summary: {', '.join(parts) or 'no messages'}; "
                f"{sum(o.records for o in self.outcomes)} {unit} "
                f"{'would be ' if self.dry_run else ''}{verb}; {deleted} message(s) "
                f"deleted, {kept} left in the queue"
                + (f" ({later} not taken: --max-messages)" if later else ""))


@dataclass
class Check:
    """What a pipeline expects of replaying one range."""

    replay: list[dict[str, Any]]
    """The records to replay, in order (the range's, and any the pipeline adds)."""
    detail: object | None = None
    """The pipeline's own findings, kept on the outcome."""


class RangePipeline(Protocol):
    """One stream pipeline as the redrive sees it."""

    target: Target
    lost: str
    """What the records of a lost range are missing from, for the report."""

    def read(self, failed: FailedRange) -> RangeRead:
        """The range's records from the stream; raises RedriveError if it cannot tell."""
        ...

    def select(self, failed: FailedRange, records: list[dict[str, Any]]
               ) -> list[dict[str, Any]]:
        """The records the mapping's filter would have delivered."""
        ...

    def check(self, failed: FailedRange, records: list[dict[str, Any]], say: Say) -> Check:
        """What replaying ``records`` will do, reported with ``say``; raises RedriveError."""
        ...


class QueueHold:
    """The DLQ's messages, held invisible for one run and released or deleted each."""

    def __init__(self, sqs: SQSClient, queue_url: str, settings: Settings) -> None:
        self._sqs = sqs
        self.url = queue_url
        self._settings = settings

    def receive_all(self) -> list[dict[str, Any]]:
        """Every visible message, held for the run (each once, its newest receipt)."""
        seen: dict[str, dict[str, Any]] = {}
        while True:
            response = self._sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10,
                VisibilityTimeout=self._settings.hold_seconds,
                WaitTimeSeconds=self._settings.wait_seconds,
                MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"],
            )
            found = response.get("Messages", [])
            fresh = [m for m in found if m["MessageId"] not in seen]
            for message in found:
                seen[message["MessageId"]] = dict(message)
            if not fresh:
                return list(seen.values())

    def hold(self, receipt_handle: str) -> None:
        self._sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt_handle,
                                            VisibilityTimeout=self._settings.hold_seconds)

    def release(self, receipt_handle: str) -> None:
        self._sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt_handle,
                                            VisibilityTimeout=0)

    def delete(self, receipt_handle: str) -> None:
        self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=receipt_handle)


class Redrive:
    """One run over a stream pipeline's DLQ."""

    def __init__(
        self,
        *,
        sqs: SQSClient,
        queue_url: str,
        pipeline: RangePipeline,
        settings: Settings,
        out: Say,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Args:
            out: receives the run's report, one line at a time.
        """
        self._queue = QueueHold(sqs, queue_url, settings)
        self._pipeline = pipeline
        self._settings = settings
        self._out = out
        self._clock = clock
        self._sleep = sleep

    def run(self) -> Report:
        settings = self._settings
        report = Report(dry_run=settings.dry_run)
        messages = self._queue.receive_all()
        ranges: list[FailedRange] = []
        for message in messages:
            try:
                ranges.append(parse_on_failure(message["MessageId"], message["ReceiptHandle"],
                                               message.get("Body", "")))
            except NotOnFailureMessageError as exc:
                self._say(f"message {message['MessageId']}: not an on-failure message ({exc});"
                          " left in the queue")
                report.outcomes.append(Outcome(Status.NOT_ON_FAILURE, message["MessageId"]))
                self._queue.release(message["ReceiptHandle"])
        ranges.sort(key=lambda failed: failed.order)
        chosen = ranges[:settings.max_messages] if settings.max_messages else ranges
        later = ranges[len(chosen):]
        self._say(f"{len(messages)} message(s) in the queue, {len(ranges)} on-failure "
                  f"range(s); handling {len(chosen)}, oldest first"
                  + (" (dry run: nothing is written or deleted)" if settings.dry_run else ""))
        blocked: set[tuple[str, str]] = set()
        for number, failed in enumerate(chosen, 1):
            self._say("")
            self._say(f"[{number}/{len(chosen)}] message {failed.message_id}: {failed.describe()}")
            self._say(f"    batch of {failed.batch_size} record(s), arrived {failed.arrivals()} "
                      f"({age(failed.first_arrival, self._now())}); Lambda gave up "
                      f"({failed.condition}) at {iso(failed.failed_at)}"
                      + (f" after {failed.invocations} invocation(s)"
                         if failed.invocations else ""))
            shard = (failed.stream_arn, failed.shard_id)
            if shard in blocked:
                self._say("    held back: an older range of this shard did not go through, "
                          "and replaying this one first would apply the shard out of order; "
                          "left in the queue")
                outcome = Outcome(Status.HELD_BACK, failed.message_id, failed)
            else:
                self._queue.hold(failed.receipt_handle)
                outcome = self._handle(failed)
                if outcome.status is Status.FAILED:
                    blocked.add(shard)
            if not outcome.deleted:
                self._queue.release(failed.receipt_handle)
            report.outcomes.append(outcome)
        for failed in later:
            report.outcomes.append(Outcome(Status.LEFT_FOR_LATER, failed.message_id, failed))
            self._queue.release(failed.receipt_handle)
        self._say("")
        self._say(report.summary(later=len(later)))
        return report

    # --- one message --------------------------------------------------------------

    def _handle(self, failed: FailedRange) -> Outcome:
        pipeline = self._pipeline
        try:
            read = pipeline.read(failed)
        except RedriveError as exc:
            self._say(f"    FAILED to read the stream: {exc}; left in the queue")
            return Outcome(Status.FAILED, failed.message_id, failed)
        try:
            records = pipeline.select(failed, read.records)
        except RedriveError as exc:
            self._say(f"    FAILED to apply the mapping's filter: {exc}; left in the queue")
            return Outcome(Status.FAILED, failed.message_id, failed)
        filtered = len(read.records) - len(records)
        self._say(f"    read {len(read.records)} record(s) of the range from the stream"
                  + (f"; {filtered} left out by the mapping's filter" if filtered else ""))
        if read.complete and len(records) < failed.batch_size:
            self._say(f"    note: the batch had {failed.batch_size} record(s), the range holds "
                      f"{len(records)} that pass the filter")
        if not read.records:
            self._lost(failed, read)
            return self._expired(failed, replayed=0)
        if not read.complete:
            self._lost(failed, read)
        try:
            check = pipeline.check(failed, records, self._say)
        except RedriveError as exc:
            self._say(f"    FAILED to check what the replay would do: {exc}; left in the queue")
            return Outcome(Status.FAILED, failed.message_id, failed)
        outcome = self._settle(failed, read, check)
        outcome.check = check.detail
        return outcome

    def _settle(self, failed: FailedRange, read: RangeRead, check: Check) -> Outcome:
        settings = self._settings
        records = check.replay
        if settings.dry_run:
            status = Status.EXPIRED if not read.complete else Status.WOULD_RECOVER
            self._say(f"    dry run: would replay {len(records)} record(s) in batches of "
                      f"{settings.batch_size}; {status.value}")
            return Outcome(status, failed.message_id, failed, records=len(records))
        result = replay(records, self._pipeline.target, batch_size=settings.batch_size,
                        max_attempts=settings.max_attempts, progress=self._progress,
                        sleep=self._sleep, backoff_seconds=settings.backoff_seconds)
        if not result.ok:
            self._say(f"    FAILED: {result.records} of {len(records)} record(s) went through; "
                      f"stopped at {result.stopped_at}: {result.error}. Left in the queue: "
                      "fix the cause (see the function's errors) and run the redrive again")
            return Outcome(Status.FAILED, failed.message_id, failed, records=result.records)
        if not read.complete:
            return self._expired(failed, replayed=result.records)
        self._queue.delete(failed.receipt_handle)
        self._say(f"    recovered: {result.records} record(s) replayed; message deleted")
        return Outcome(Status.RECOVERED, failed.message_id, failed, result.records,
                       deleted=True)

    def _expired(self, failed: FailedRange, *, replayed: int) -> Outcome:
        if self._settings.dry_run:
            self._say("    dry run: nothing to replay; expired")
            return Outcome(Status.EXPIRED, failed.message_id, failed)
        if self._settings.discard_expired:
            self._queue.delete(failed.receipt_handle)
            self._say("    message deleted (--discard-expired)"
                      + (f" after replaying the {replayed} record(s) left" if replayed else ""))
            return Outcome(Status.EXPIRED, failed.message_id, failed, replayed, deleted=True)
        self._say("    left in the queue" + (f" (the {replayed} record(s) left were replayed)"
                                              if replayed else "")
                  + "; run with --discard-expired to delete it once the loss is noted")
        return Outcome(Status.EXPIRED, failed.message_id, failed, replayed)

    def _lost(self, failed: FailedRange, read: RangeRead) -> None:
        now = self._now()
        if not read.records:
            self._say(f"    EXPIRED: nothing of this range is left in the stream: {read.lost_head}")
            self._say(f"    lost: {failed.describe()}, {failed.batch_size} record(s) that "
                      f"arrived {failed.arrivals()} ({age(failed.first_arrival, now)}; a stream "
                      f"keeps records 24 h by default). {self._pipeline.lost}")
            return
        first = position(read.records[0])
        last = position(read.records[-1])
        if read.lost_head:
            self._say(f"    PARTLY EXPIRED: {read.lost_head}")
            self._say(f"    lost: {failed.shard_id}, sequence {failed.start} up to (not "
                      f"including) {first}, records that arrived from "
                      f"{iso(failed.first_arrival)} ({age(failed.first_arrival, now)})")
        if read.lost_tail:
            self._say(f"    INCOMPLETE: {read.lost_tail}")
            self._say(f"    lost: {failed.shard_id}, sequence after {last} up to "
                      f"{failed.end}, records that arrived up to {iso(failed.last_arrival)}")

    def _progress(self, line: str) -> None:
        self._say(f"    {line}")

    def _say(self, line: str) -> None:
        self._out(line)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)
