"""One SQS batch of S3 events, end to end: decode, plan bundles, write, report failures.

Data problems never raise: a malformed message is logged with its message id and
reason, counted and *acknowledged*, because retrying it could never succeed; a
malformed event record in a message of good ones is skipped alone, and an object that
can never be read (no such bucket, access denied) is left out of its bundle, which is
written with the other members. ``s3:TestEvent`` messages are counted and acknowledged. A
message fails (and SQS redelivers it after the visibility timeout) when any of its
objects was not bundled: a write failed, another invocation is bundling it right now,
or it is larger than ``MAX_BUNDLE_INPUT_MB`` (it then reaches the DLQ; see
docs/bundles.md). Every failed message id is reported, as SQS needs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from streamagg_engine.batch import (
    UNEXPECTED_SHAPES,
    FailedRecords,
    Job,
    log_skipped,
    settle,
    write_failed,
)
from streamagg_engine.errors import MalformedRecordError, StoreError

from .bundler import Bundler, Lease, Outcome, Stores
from .config import BundlerConfig
from .processor import PlannedBundle, key_scheme, plan_bundles
from .s3_events import Message, SourceObject, message_id, object_identity, parse_message
from .tarball import GONE

logger = logging.getLogger(__name__)


@dataclass
class BundleBatchResult:
    """What one batch did; logged on completion and turned into Lambda's response."""

    messages: int = 0
    skipped_malformed: int = 0
    test_events: int = 0
    ignored_records: int = 0
    objects: int = 0
    duplicate_objects: int = 0
    """Announced twice in the batch, or already in a finished bundle."""
    objects_bundled: int = 0
    objects_gone: int = 0
    objects_unreadable: int = 0
    """Left out of their bundle: S3 refused to read them for a reason a retry cannot fix."""
    objects_oversized: int = 0
    objects_deferred: int = 0
    bundles_written: int = 0
    bundles_already_written: int = 0
    bundle_input_bytes: int = 0
    failed_writes: int = 0
    failures: FailedRecords = field(default_factory=lambda: FailedRecords(ordered=False))
    """Every message some object of which was not bundled (SQS: all are reported)."""

    @property
    def failed_messages(self) -> int:
        return len(self.failures.identifiers())

    def response(self) -> dict[str, list[dict[str, str]]]:
        return self.failures.response()

    def summary(self) -> dict[str, int]:
        found = {k: v for k, v in vars(self).items() if isinstance(v, int)}
        found["failed_messages"] = self.failed_messages
        return found


@dataclass
class _Decoded:
    objects: dict[str, SourceObject] = field(default_factory=dict)
    """By identity: each object once, however often it was announced."""
    carriers: dict[str, list[str]] = field(default_factory=dict)
    """Identity -> the ids of the messages announcing it."""


def process_batch(raw_records: Sequence[Any], *, config: BundlerConfig, stores: Stores,
                  pool: Executor, lease: Lease) -> BundleBatchResult:
    result = BundleBatchResult(messages=len(raw_records))
    decoded = _decode(raw_records, result)
    bundlable = []
    for identity, obj in decoded.objects.items():
        if obj.size > config.max_input_bytes:
            _oversized(obj, decoded.carriers[identity], config, result)
        else:
            bundlable.append(obj)
    bundler = Bundler(stores, config, lease)
    jobs: list[Job] = []
    for planned in plan_bundles(bundlable, keys=key_scheme(config, lease.now_ms),
                                max_input_bytes=config.max_input_bytes,
                                max_objects=config.max_bundle_objects):
        carried = _carried(planned, decoded)
        jobs.append((pool.submit(bundler.run, planned),
                     partial(_finished, result, planned, decoded),
                     partial(_failed, result, carried, planned.key)))
    settle(jobs)
    return result


def _decode(raw_records: Sequence[Any], result: BundleBatchResult) -> _Decoded:
    """Each announced object once, with the messages announcing it.

    Everything a message needs (its objects' identities too) is worked out inside the
    guard, before the message joins the batch: a message that fails half-way adds
    nothing, so a bad one never takes another's objects with it.
    """
    decoded = _Decoded()
    for raw in raw_records:
        try:
            message = parse_message(raw)
            identities = [obj.identity for obj in message.objects]
        except (MalformedRecordError, *UNEXPECTED_SHAPES) as exc:
            result.skipped_malformed += 1
            log_skipped(logger, exc, record_id=message_id(raw),
                        receive_count=_receive_count(raw))
            continue
        _add(decoded, message, identities, result)
    return decoded


def _add(decoded: _Decoded, message: Message, identities: list[str],
         result: BundleBatchResult) -> None:
    if message.test_event:
        result.test_events += 1
        logger.info("s3:TestEvent acknowledged", extra={"event_id": message.message_id})
    result.ignored_records += message.ignored_records
    for problem in message.malformed:
        result.skipped_malformed += 1
        log_skipped(logger, problem, record_id=message.message_id)
    for obj, identity in zip(message.objects, identities, strict=True):
        result.objects += 1
        carriers = decoded.carriers.setdefault(identity, [])
        if carriers:
            result.duplicate_objects += 1
        else:
            decoded.objects[identity] = obj
        if message.message_id not in carriers:
            carriers.append(message.message_id)


def _oversized(obj: SourceObject, carriers: list[str], config: BundlerConfig,
               result: BundleBatchResult) -> None:
    result.objects_oversized += 1
    result.failures.add((message, message) for message in carriers)
    logger.error("object larger than MAX_BUNDLE_INPUT_MB: not bundled; its message fails "
                 "and reaches the DLQ after maxReceiveCount", extra={
                     "event_id": carriers[0], "bucket": obj.bucket, "key": obj.key,
                     "size": obj.size, "max_bundle_input_mb": config.max_bundle_input_mb})


def _carried(planned: PlannedBundle, decoded: _Decoded) -> list[tuple[str, str]]:
    return [(message, message) for member in planned.members
            for message in decoded.carriers[member.identity]]


def _finished(result: BundleBatchResult, planned: PlannedBundle, decoded: _Decoded,
              outcome: Outcome) -> None:
    bundled: set[str] = set()
    for manifest in outcome.written:
        result.bundles_written += 1
        for missing in manifest.missing:
            if missing["reason"] == GONE:
                result.objects_gone += 1
                continue
            result.objects_unreadable += 1
            logger.warning("object left out of its bundle: it cannot be read", extra={
                "bundle_key": manifest.key, "bucket": missing["bucket"],
                "key": missing["key"], "reason": missing["reason"]})
        result.bundle_input_bytes += manifest.input_bytes
        logger.info("bundle written", extra={
            "bundle_key": manifest.key, "objects": len(manifest.objects),
            "missing": len(manifest.missing), "input_bytes": manifest.input_bytes})
        for entry in manifest.objects:
            bundled.add(object_identity(entry["bucket"], entry["key"], entry["version_id"],
                                        entry["etag"]))
    result.bundles_already_written += len(outcome.already_written)
    result.objects_bundled += len(bundled)
    identities = {member.identity for member in planned.members}
    result.duplicate_objects += len((outcome.done & identities) - bundled)
    deferred = outcome.deferred & identities
    result.objects_deferred += len(deferred)
    for identity in sorted(deferred):
        carriers = decoded.carriers[identity]
        result.failures.add((message, message) for message in carriers)
        logger.info("object is being bundled by another invocation; its message is retried",
                    extra={"event_id": carriers[0], "identity": identity})


def _failed(result: BundleBatchResult, carried: list[tuple[str, str]], key: str,
            exc: StoreError) -> None:
    result.failed_writes += 1
    write_failed(logger, result.failures, carried, "bundle", key)(exc)


def _receive_count(raw: Any) -> str | None:
    attributes = raw.get("attributes") if isinstance(raw, dict) else None
    value = attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    return value if isinstance(value, str) else None
