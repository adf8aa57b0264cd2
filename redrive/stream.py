"""A failed range read back from the table's stream, in the shape Lambda delivers it.

``GetShardIterator(AT_SEQUENCE_NUMBER)`` at the range's first record, then ``GetRecords``
until its last. What the stream no longer has is reported, not guessed: a start behind
the trim horizon (``TrimmedDataAccessException``: records older than the stream's 24 h),
a stream or shard that is gone (``ResourceNotFoundException``), or records that simply
are not there.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .errors import StreamReadError, UnsupportedFilterError
from .messages import FailedRange
from .ranges import RangeRead, note_gaps

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

PAGE_LIMIT = 1000
"""Records per GetRecords call, at most (the API's maximum)."""
MAX_EMPTY_PAGES = 25
"""An open shard can answer with empty pages before the records it still holds; this many
in a row, with the range not finished, means the rest of the range is not there."""
EMPTY_PAGE_PAUSE = 0.2
"""Seconds between empty pages (GetRecords allows 5 calls a second per shard)."""


def lambda_record(record: Mapping[str, Any], *, stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record (as boto3 returns it) in the shape Lambda hands the function.

    ``ApproximateCreationDateTime`` becomes epoch seconds, binary values base64 text,
    and the event source fields Lambda adds are added. ``userIdentity`` (TTL deletions)
    is kept as it is.
    """
    body = json.loads(json.dumps(record["dynamodb"], default=_lambda_json))
    converted: dict[str, Any] = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", region),
        "dynamodb": body,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:
        converted["userIdentity"] = dict(record["userIdentity"])
    return converted


def read_range(
    streams: DynamoDBStreamsClient,
    failed: FailedRange,
    *,
    region: str,
    sleep: Callable[[float], None] = time.sleep,
    max_empty_pages: int = MAX_EMPTY_PAGES,
) -> RangeRead:
    """Read ``failed``'s records, ``start`` to ``end`` inclusive.

    Raises:
        StreamReadError: the stream could not be read (throttled past the SDK's retries,
            access denied, ...): nothing is known about the range.
    """
    return _RangeReader(streams, failed, region, sleep, max_empty_pages).read()


class _RangeReader:
    def __init__(self, streams: DynamoDBStreamsClient, failed: FailedRange, region: str,
                 sleep: Callable[[float], None], max_empty_pages: int) -> None:
        self._streams = streams
        self._failed = failed
        self._region = region
        self._sleep = sleep
        self._max_empty_pages = max_empty_pages
        self._start, self._end = int(failed.start), int(failed.end)
        self._result = RangeRead()
        self._last_seen: str | None = None
        self._reopened: str | None = None
        """Set by :meth:`_page` when it replaces the iterator instead of reading a page."""
        # A range holds its batch plus whatever the mapping's filter left out: read pages
        # about that size rather than 1,000 records for a range of 10.
        self._limit = min(PAGE_LIMIT, max(100, 2 * failed.batch_size))

    def read(self) -> RangeRead:
        iterator = self._first_iterator()
        empty = 0
        while iterator:
            page = self._page(iterator)
            if page is None:  # the iterator was replaced, or the head was trimmed
                iterator = self._reopened
                continue
            iterator = page.get("NextShardIterator")
            found = page.get("Records", [])
            if not found:
                empty += 1
                if empty >= self._max_empty_pages:
                    break
                self._sleep(EMPTY_PAGE_PAUSE)
                continue
            empty = 0
            if self._take(found):
                break
        note_gaps(self._result, self._failed)
        return self._result

    def _first_iterator(self) -> str | None:
        failed, result = self._failed, self._result
        try:
            return _iterator(self._streams, failed, "AT_SEQUENCE_NUMBER", failed.start)
        except ClientError as exc:
            code = _code(exc)
            if code == "ResourceNotFoundException":
                result.lost_head = result.lost_tail = (
                    f"{code}: the stream or its shard no longer exists ({_message(exc)})")
                return None
            if code != "TrimmedDataAccessException":
                raise StreamReadError(f"GetShardIterator: {code}: {_message(exc)}") from exc
            result.lost_head = (f"{code}: the range starts behind the stream's trim horizon "
                                "(records are kept 24 h)")
            return self._horizon()

    def _page(self, iterator: str) -> Mapping[str, Any] | None:
        try:
            return self._streams.get_records(ShardIterator=iterator, Limit=self._limit)
        except ClientError as exc:
            code = _code(exc)
            try:
                if code == "ExpiredIteratorException":
                    self._reopened = (
                        _iterator(self._streams, self._failed, "AFTER_SEQUENCE_NUMBER",
                                  self._last_seen) if self._last_seen else
                        _iterator(self._streams, self._failed, "AT_SEQUENCE_NUMBER",
                                  self._failed.start))
                    return None
                if code == "TrimmedDataAccessException" and not self._result.records:
                    self._result.lost_head = (f"{code}: the range was trimmed from the stream "
                                              "while it was read (records are kept 24 h)")
                    self._reopened = self._horizon()
                    return None
            except ClientError as again:
                raise StreamReadError(f"GetShardIterator: {_code(again)}: "
                                      f"{_message(again)}") from again
            raise StreamReadError(f"GetRecords: {code}: {_message(exc)}") from exc
        except BotoCoreError as exc:
            raise StreamReadError(f"GetRecords: {exc}") from exc

    def _take(self, found: Sequence[Mapping[str, Any]]) -> bool:
        """Keep the page's records inside the range; True once past its end."""
        for raw in found:
            number = str(raw["dynamodb"]["SequenceNumber"])
            self._last_seen = number
            if int(number) < self._start:
                continue
            if int(number) > self._end:
                return True
            self._result.records.append(lambda_record(raw, stream_arn=self._failed.stream_arn,
                                                      region=self._region))
            if int(number) == self._end:
                return True
        return False

    def _horizon(self) -> str | None:
        """An iterator at the trim horizon: the part of the range that is left."""
        try:
            return _iterator(self._streams, self._failed, "TRIM_HORIZON")
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                self._result.lost_tail = f"ResourceNotFoundException: {_message(exc)}"
                return None
            raise StreamReadError(f"GetShardIterator: {_code(exc)}: {_message(exc)}") from exc


def _iterator(streams: DynamoDBStreamsClient, failed: FailedRange, kind: str,
              sequence: str | None = None) -> str | None:
    arguments: dict[str, Any] = {"StreamArn": failed.stream_arn, "ShardId": failed.shard_id,
                                 "ShardIteratorType": kind}
    if sequence is not None:
        arguments["SequenceNumber"] = sequence
    try:
        return streams.get_shard_iterator(**arguments).get("ShardIterator")
    except BotoCoreError as exc:
        raise StreamReadError(f"GetShardIterator: {exc}") from exc


class RecordFilter:
    """The event source mapping's filter criteria, applied to replayed records.

    Lambda invokes the function only with records that match one of the mapping's
    patterns, so a replay must leave out the same records. The patterns the construct
    writes (and most hand-written ones) match exact values, which this evaluates; a
    pattern with a content-filtering operator (``prefix``, ``anything-but``, ``numeric``,
    ``exists``, ...) raises :class:`UnsupportedFilterError` rather than being guessed.
    """

    def __init__(self, patterns: Sequence[Mapping[str, Any]] = ()) -> None:
        for pattern in patterns:
            _check_pattern(pattern, "")
        self.patterns = tuple(patterns)

    @classmethod
    def from_criteria(cls, criteria: Mapping[str, Any] | None) -> RecordFilter:
        """From a mapping's ``FilterCriteria`` (``{"Filters": [{"Pattern": "<json>"}]}``)."""
        filters = (criteria or {}).get("Filters") or []
        return cls([json.loads(f["Pattern"]) for f in filters if f.get("Pattern")])

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, record: Mapping[str, Any]) -> bool:
        return not self.patterns or any(_matches(p, record) for p in self.patterns)

    def describe(self) -> str:
        if not self.patterns:
            return "no filter"
        return " or ".join(json.dumps(p, sort_keys=True) for p in self.patterns)


def _check_pattern(pattern: Any, path: str) -> None:
    if not isinstance(pattern, Mapping):
        raise UnsupportedFilterError(f"filter pattern at {path or 'the top'} is not an object")
    for key, expected in pattern.items():
        where = f"{path}.{key}" if path else key
        if isinstance(expected, Mapping):
            _check_pattern(expected, where)
        elif isinstance(expected, list):
            for value in expected:
                if isinstance(value, Mapping | list):
                    raise UnsupportedFilterError(
                        f"filter on {where} uses {json.dumps(value)}, which the redrive "
                        "cannot evaluate; use --ignore-filters to replay every record "
                        "(the handler ignores the records it does not use)")
        else:
            raise UnsupportedFilterError(f"filter on {where} is not a list of values")


def _matches(pattern: Mapping[str, Any], value: Any) -> bool:
    if not isinstance(value, Mapping):
        return False
    for key, expected in pattern.items():
        if key not in value:
            return False
        actual = value[key]
        if isinstance(expected, Mapping):
            if not _matches(expected, actual):
                return False
        elif actual not in expected:
            return False
    return True


def _lambda_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


class StreamRanges:
    """What every stream pipeline's redrive does alike: read a failed range back from its
    stream and keep the records the mapping's filter lets through.

    ``reader`` reads a range (DynamoDB Streams by default); ``view`` is what the filter
    matches a record by (the record itself, unless a pipeline's records hide their data).
    """

    def __init__(self, client: Any, *, filters: Mapping[str, RecordFilter], region: str,
                 sleep: Callable[[float], None] = time.sleep,
                 reader: Callable[..., RangeRead] = read_range,
                 view: Callable[[Mapping[str, Any]], Mapping[str, Any]] = lambda r: r) -> None:
        """Args:
            filters: the mapping's filter by stream ARN; a stream without one: no filter.
        """
        self._client = client
        self._filters = filters
        self._region = region
        self._sleep = sleep
        self._reader = reader
        self._view = view

    def read(self, failed: FailedRange) -> RangeRead:
        return self._reader(self._client, failed, region=self._region, sleep=self._sleep)

    def select(self, failed: FailedRange, records: list[dict[str, Any]]
               ) -> list[dict[str, Any]]:
        record_filter = self._filters.get(failed.stream_arn, RecordFilter())
        if not record_filter:
            return records
        return [r for r in records if record_filter.matches(self._view(r))]
