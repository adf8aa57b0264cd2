"""One redrive run: take the DLQ's on-failure messages, replay their ranges, settle each.

Messages are taken off the queue first (held invisible for the run), ordered by stream
position (a shard's older range before its newer one: replaying a newer range first
would move watermarks past the older one), then handled one by one:

* read the range from the stream and keep the records the mapping's filter lets through;
* check the snapshots' watermarks (:mod:`redrive.watermarks`);
* replay the records (:mod:`redrive.replay`);
* delete the message only when its whole range went through and nothing was shadowed;
  an expired range is deleted only with ``discard_expired``, a shadowed one only with
  ``discard_shadowed``. Everything not deleted is made visible again at the end.

If a range fails, the later ranges of the same shard are held back for the same reason
the replay stops at a failing batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aggregator.config import AggregatorConfig

from .errors import NotOnFailureMessageError, RedriveError
from .messages import FailedRange, age, iso, parse_on_failure
from .replay import Target, replay
from .stream import RangeRead, RecordFilter, read_range
from .watermarks import WatermarkCheck, check_range

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient


class Status(StrEnum):
    RECOVERED = "recovered"
    WOULD_RECOVER = "would recover"
    EXPIRED = "expired"
    SHADOWED = "shadowed"
    FAILED = "failed"
    HELD_BACK = "held back"
    NOT_ON_FAILURE = "not an on-failure message"
    LEFT_FOR_LATER = "left for a later run"


@dataclass(frozen=True)
class Settings:
    batch_size: int = 100
    max_attempts: int = 3
    """Invocations of one batch before the range is given up for this run."""
    max_messages: int | None = None
    """Handle at most this many messages (the oldest ranges); None: all."""
    dry_run: bool = False
    discard_expired: bool = False
    discard_shadowed: bool = False
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
    """Records of the range replayed (or, in a dry run, that would be)."""
    deleted: bool = False
    check: WatermarkCheck | None = None
    """What the snapshots' watermarks said about the range, when it was read."""


@dataclass
class Report:
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def exit_code(self) -> int:
        """0 when nothing the run took is left behind (in a dry run: would be), else 1."""
        done = {Status.WOULD_RECOVER} if self.dry_run else {Status.RECOVERED}
        return 0 if all(o.status in done or o.deleted for o in self.outcomes) else 1


class Redrive:
    def __init__(
        self,
        *,
        sqs: SQSClient,
        queue_url: str,
        streams: DynamoDBStreamsClient,
        dynamodb: DynamoDBClient,
        config: AggregatorConfig,
        target: Target,
        filters: Mapping[str, RecordFilter],
        region: str,
        settings: Settings,
        out: Callable[[str], None],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Args:
            filters: the mapping's filter by stream ARN; a stream without one: no filter.
            out: receives the run's report, one line at a time.
        """
        self._sqs = sqs
        self._queue = queue_url
        self._streams = streams
        self._dynamodb = dynamodb
        self._config = config
        self._target = target
        self._filters = filters
        self._region = region
        self._settings = settings
        self._out = out
        self._clock = clock
        self._sleep = sleep

    def run(self) -> Report:
        settings = self._settings
        report = Report(dry_run=settings.dry_run)
        messages = self._receive_all()
        ranges: list[FailedRange] = []
        for message in messages:
            try:
                ranges.append(parse_on_failure(message["MessageId"], message["ReceiptHandle"],
                                               message.get("Body", "")))
            except NotOnFailureMessageError as exc:
                self._say(f"message {message['MessageId']}: not an on-failure message ({exc});"
                          " left in the queue")
                report.outcomes.append(Outcome(Status.NOT_ON_FAILURE, message["MessageId"]))
                self._release(message["ReceiptHandle"])
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
                          "and replaying this one first would shadow it; left in the queue")
                outcome = Outcome(Status.HELD_BACK, failed.message_id, failed)
            else:
                self._hold(failed)
                outcome = self._handle(failed)
                if outcome.status is Status.FAILED:
                    blocked.add(shard)
            if not outcome.deleted:
                self._release(failed.receipt_handle)
            report.outcomes.append(outcome)
        for failed in later:
            report.outcomes.append(Outcome(Status.LEFT_FOR_LATER, failed.message_id, failed))
            self._release(failed.receipt_handle)
        self._summary(report, len(later))
        return report

    # --- one message --------------------------------------------------------------

    def _handle(self, failed: FailedRange) -> Outcome:
        try:
            read = read_range(self._streams, failed, region=self._region, sleep=self._sleep)
        except RedriveError as exc:
            self._say(f"    FAILED to read the stream: {exc}; left in the queue")
            return Outcome(Status.FAILED, failed.message_id, failed)
        record_filter = self._filters.get(failed.stream_arn, RecordFilter())
        records = [r for r in read.records if record_filter.matches(r)]
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
            check = check_range(records, range_end=failed.end, config=self._config,
                                dynamodb=self._dynamodb)
        except RedriveError as exc:
            self._say(f"    FAILED to read the snapshots' watermarks: {exc}; left in the queue")
            return Outcome(Status.FAILED, failed.message_id, failed)
        self._describe_check(check)
        outcome = self._settle(failed, read, records, check)
        outcome.check = check
        return outcome

    def _settle(self, failed: FailedRange, read: RangeRead, records: list[dict[str, Any]],
                check: WatermarkCheck) -> Outcome:
        settings = self._settings
        if settings.dry_run:
            status = (Status.EXPIRED if not read.complete else
                      Status.SHADOWED if check.shadowed else Status.WOULD_RECOVER)
            self._say(f"    dry run: would replay {len(records)} record(s) in batches of "
                      f"{settings.batch_size}; {status.value}")
            return Outcome(status, failed.message_id, failed, records=len(records))
        result = replay(records, self._target, batch_size=settings.batch_size,
                        max_attempts=settings.max_attempts, progress=self._progress,
                        sleep=self._sleep, backoff_seconds=settings.backoff_seconds)
        if not result.ok:
            self._say(f"    FAILED: {result.records} of {len(records)} record(s) went through; "
                      f"stopped at {result.stopped_at}: {result.error}. Left in the queue: "
                      "fix the cause (see the function's errors) and run the redrive again")
            return Outcome(Status.FAILED, failed.message_id, failed, records=result.records)
        if not read.complete:
            return self._expired(failed, replayed=result.records)
        if check.shadowed:
            if settings.discard_shadowed:
                self._delete(failed)
                self._say(f"    replayed {result.records} record(s); shadowed records "
                          "accepted (--discard-shadowed): message deleted")
                return Outcome(Status.SHADOWED, failed.message_id, failed, result.records,
                               deleted=True)
            self._say(f"    replayed {result.records} record(s), but the shadowed ones above "
                      "could not be; left in the queue (--discard-shadowed deletes it)")
            return Outcome(Status.SHADOWED, failed.message_id, failed, result.records)
        self._delete(failed)
        self._say(f"    recovered: {result.records} record(s) replayed; message deleted")
        return Outcome(Status.RECOVERED, failed.message_id, failed, result.records,
                       deleted=True)

    def _expired(self, failed: FailedRange, *, replayed: int) -> Outcome:
        if self._settings.dry_run:
            self._say("    dry run: nothing to replay; expired")
            return Outcome(Status.EXPIRED, failed.message_id, failed)
        if self._settings.discard_expired:
            self._delete(failed)
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
                      "keeps records 24 h). Their counts are missing from the snapshots of "
                      "those windows, and their audit removals from the archive")
            return
        first = read.records[0]["dynamodb"]["SequenceNumber"]
        last = read.records[-1]["dynamodb"]["SequenceNumber"]
        if read.lost_head:
            self._say(f"    PARTLY EXPIRED: {read.lost_head}")
            self._say(f"    lost: {failed.shard_id}, sequence {failed.start} up to (not "
                      f"including) {first}, records that arrived from "
                      f"{iso(failed.first_arrival)} ({age(failed.first_arrival, now)})")
        if read.lost_tail:
            self._say(f"    INCOMPLETE: {read.lost_tail}")
            self._say(f"    lost: {failed.shard_id}, sequence after {last} up to "
                      f"{failed.end}, records that arrived up to {iso(failed.last_arrival)}")

    def _describe_check(self, check: WatermarkCheck) -> None:
        self._say(f"    {check.counting_records} record(s) move counters: "
                  f"{check.to_add} snapshot contribution(s) to add, "
                  f"{check.already_counted} already counted, {check.shadowed_pairs} shadowed"
                  + (f"; {check.archive_lines} audit removal(s) to archive"
                     if check.archive_lines else "")
                  + (f"; {check.malformed} malformed (skipped, as before)"
                     if check.malformed else ""))
        if check.shadowed:
            self._say("    SHADOWED: later records of the same buckets were counted into these "
                      "snapshot items after the batch failed, so their watermarks are past "
                      "the range and a replay skips these contributions. They may be missing "
                      "(up to the amounts below); if the function's errors show no failed "
                      "write for these items, they were counted:")
            for item in check.shadowed:
                self._say(f"      {item.describe()}")

    # --- the queue ------------------------------------------------------------------

    def _receive_all(self) -> list[dict[str, Any]]:
        """Every visible message, held for the run (each once, its newest receipt)."""
        seen: dict[str, dict[str, Any]] = {}
        while True:
            response = self._sqs.receive_message(
                QueueUrl=self._queue, MaxNumberOfMessages=10,
                VisibilityTimeout=self._settings.hold_seconds,
                WaitTimeSeconds=self._settings.wait_seconds,
            )
            found = response.get("Messages", [])
            fresh = [m for m in found if m["MessageId"] not in seen]
            for message in found:
                seen[message["MessageId"]] = dict(message)
            if not fresh:
                return list(seen.values())

    def _hold(self, failed: FailedRange) -> None:
        self._sqs.change_message_visibility(QueueUrl=self._queue,
                                            ReceiptHandle=failed.receipt_handle,
                                            VisibilityTimeout=self._settings.hold_seconds)

    def _release(self, receipt_handle: str) -> None:
        self._sqs.change_message_visibility(QueueUrl=self._queue, ReceiptHandle=receipt_handle,
                                            VisibilityTimeout=0)

    def _delete(self, failed: FailedRange) -> None:
        self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=failed.receipt_handle)

    # --- output -----------------------------------------------------------------------

    def _summary(self, report: Report, later: int) -> None:
        self._say("")
        parts = [f"{report.count(status)} {status.value}" for status in Status
                 if report.count(status)]
        deleted = sum(1 for o in report.outcomes if o.deleted)
        kept = len(report.outcomes) - deleted
        self._say(f"summary: {', '.join(parts) or 'no messages'}; "
                  f"{sum(o.records for o in report.outcomes)} record(s) "
                  f"{'would be ' if report.dry_run else ''}replayed; {deleted} message(s) "
                  f"deleted, {kept} left in the queue"
                  + (f" ({later} not taken: --max-messages)" if later else ""))

    def _progress(self, line: str) -> None:
        self._say(f"    {line}")

    def _say(self, line: str) -> None:
        self._out(line)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)
