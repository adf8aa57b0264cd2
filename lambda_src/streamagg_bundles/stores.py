"""The bundler's AWS I/O: three narrow adapters over clients passed in.

* :class:`ClaimTable` (DynamoDB): one *claim* item per source object, naming the bundle
  it belongs to, and one *bundle record* per bundle (members, status, lease, owner). A
  bundle's record and all its claims are written in one transaction, each conditioned
  on not existing yet, so an object is claimed by exactly one bundle key until its claim
  expires (TTL attribute ``expires_at``).
* :class:`SourceObjects` (S3 GetObject): reads the announced version, pinned by version
  id or, in an unversioned bucket, by ``If-Match`` on the ETag.
* :class:`DistributionBucket` (S3 HeadObject/PutObject): bundles are put with
  ``If-None-Match: *``, so a key is written once; a 412 means it already exists.

Every AWS failure goes through :func:`streamagg_engine.stores.to_store_error`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from streamagg_engine.errors import StoreError
from streamagg_engine.stores import AWS_FAILURES, SOURCE_UNREADABLE, to_store_error

from .processor import BundleRecord, PlannedBundle
from .s3_events import SourceObject
from .tarball import CONTENT_TYPE, Manifest, OpenedObject, UnreadableObject, entry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

PENDING = "pending"
DONE = "done"
TTL_ATTRIBUTE = "expires_at"
_GONE = frozenset({"NoSuchKey", "NoSuchVersion", "PreconditionFailed", "404", "NotFound"})
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def claim_key(identity: str) -> dict[str, Any]:
    return {"pk": {"S": f"object#{identity}"}}


def record_key(bundle_key: str) -> dict[str, Any]:
    return {"pk": {"S": f"bundle#{bundle_key}"}}


class ClaimTable:
    def __init__(self, client: DynamoDBClient, table_name: str, ttl_days: int) -> None:
        self._client = client
        self._table = table_name
        self._ttl_seconds = ttl_days * 86_400

    def claim(self, bundle: PlannedBundle, *, owner: str, now_ms: int,
              lease_until_ms: int) -> dict[str, set[str]]:
        """Claim every member for ``bundle``; {} on success, else who holds what.

        Returns the bundle keys that already hold some of the members (the bundle's own
        key when its record exists), each with the identities it holds.
        """
        expires = {"N": str(now_ms // 1000 + self._ttl_seconds)}
        record = {
            **record_key(bundle.key), "bundle": {"S": bundle.key}, "status": {"S": PENDING},
            "owner": {"S": owner}, "lease_until": {"N": str(lease_until_ms)},
            "created_at": {"N": str(now_ms)}, TTL_ATTRIBUTE: expires,
            "members": {"S": json.dumps([entry(m) for m in bundle.members],
                                        separators=(",", ":"))},
        }
        items = [record] + [{
            **claim_key(m.identity), "bundle": {"S": bundle.key}, "bucket": {"S": m.bucket},
            "object_key": {"S": m.key}, "version": {"S": m.version_id or f"etag:{m.etag}"},
            TTL_ATTRIBUTE: expires,
        } for m in bundle.members]
        try:
            self._client.transact_write_items(TransactItems=[{"Put": {
                "TableName": self._table, "Item": item,
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }} for item in items])
        except ClientError as exc:
            if _code(exc) != "TransactionCanceledException":
                raise to_store_error(exc, "bundle claim") from exc
            return self._holders(bundle, exc.response.get("CancellationReasons", []))  # type: ignore[arg-type]
        except BotoCoreError as exc:
            raise to_store_error(exc, "bundle claim") from exc
        return {}

    def _holders(self, bundle: PlannedBundle,
                 reasons: list[Mapping[str, Any]]) -> dict[str, set[str]]:
        if len(reasons) != len(bundle.members) + 1 or not any(
                r.get("Code") == "ConditionalCheckFailed" for r in reasons):
            codes = sorted({str(r.get("Code")) for r in reasons} - {"None"})
            raise StoreError(f"bundle claim cancelled: {codes}", retryable=True,
                             code="TransactionCanceledException")
        holders: dict[str, set[str]] = {}
        for index, reason in enumerate(reasons):
            if reason.get("Code") != "ConditionalCheckFailed":
                continue
            if index == 0:
                holders.setdefault(bundle.key, set()).update(m.identity for m in bundle.members)
                continue
            member = bundle.members[index - 1]
            item = reason.get("Item") or self._get(claim_key(member.identity))
            holder = item.get("bundle", {}).get("S") if item else None
            if not isinstance(holder, str):
                raise StoreError("bundle claim: a claim vanished (TTL) during the claim",
                                 retryable=True, code="ClaimVanished")
            holders.setdefault(holder, set()).add(member.identity)
        return holders

    def get(self, bundle_key: str) -> BundleRecord | None:
        item = self._get(record_key(bundle_key))
        if not item:
            return None
        members = tuple(_member(value) for value in json.loads(item["members"]["S"]))
        return BundleRecord(bundle_key, item["status"]["S"], item["owner"]["S"],
                            int(item["lease_until"]["N"]), members)

    def take_over(self, record: BundleRecord, *, owner: str, lease_until_ms: int) -> bool:
        """Become the owner of an abandoned bundle; False if someone else did first."""
        try:
            self._client.update_item(
                TableName=self._table, Key=record_key(record.key),
                UpdateExpression="SET #owner = :owner, #lease = :lease",
                ConditionExpression="#status = :pending AND #lease = :old",
                ExpressionAttributeNames={"#owner": "owner", "#lease": "lease_until",
                                          "#status": "status"},
                ExpressionAttributeValues={":owner": {"S": owner},
                                           ":lease": {"N": str(lease_until_ms)},
                                           ":pending": {"S": PENDING},
                                           ":old": {"N": str(record.lease_until_ms)}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise to_store_error(exc, "bundle takeover") from exc
        except BotoCoreError as exc:
            raise to_store_error(exc, "bundle takeover") from exc
        return True

    def complete(self, bundle_key: str) -> None:
        """Mark the bundle written (the object exists; this only saves later checks)."""
        try:
            self._client.update_item(
                TableName=self._table, Key=record_key(bundle_key),
                UpdateExpression="SET #status = :done",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":done": {"S": DONE}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return  # the record expired: nothing left to mark
            raise to_store_error(exc, "bundle completion") from exc
        except BotoCoreError as exc:
            raise to_store_error(exc, "bundle completion") from exc

    def _get(self, key: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            response = self._client.get_item(TableName=self._table, Key=key,
                                             ConsistentRead=True)
        except AWS_FAILURES as exc:
            raise to_store_error(exc, "claim read") from exc
        return response.get("Item", {})


def _member(value: Mapping[str, Any]) -> SourceObject:
    return SourceObject(
        bucket=value["bucket"], key=value["key"], size=int(value["size"]),
        etag=value["etag"], version_id=value["version_id"], sequencer=value["sequencer"],
        event_time=datetime.fromisoformat(value["event_time"]),
    )


class SourceObjects:
    def __init__(self, client: S3Client) -> None:
        self._client = client

    def open(self, obj: SourceObject) -> OpenedObject | None:
        """The announced version's body, or None if it no longer exists."""
        kwargs: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            kwargs["VersionId"] = obj.version_id
        else:
            kwargs["IfMatch"] = f'"{obj.etag}"'
        where = f"source read s3://{obj.bucket}/{obj.key}"
        try:
            response = self._client.get_object(**kwargs)
        except ClientError as exc:
            if _code(exc) in _GONE:
                return None
            error = to_store_error(exc, where, SOURCE_UNREADABLE)
            if error.permanent:
                raise UnreadableObject(error.code) from exc
            raise error from exc
        except (ParamValidationError, UnicodeError) as exc:
            raise UnreadableObject(type(exc).__name__) from exc
        except BotoCoreError as exc:
            raise to_store_error(exc, where) from exc
        body = response["Body"]
        return OpenedObject(body=_GuardedBody(body, f"s3://{obj.bucket}/{obj.key}"),
                            size=int(response["ContentLength"]),
                            last_modified=response.get("LastModified"), close=body.close)


class _GuardedBody:
    """A response body whose read errors (timeouts, resets) are retryable StoreErrors."""

    def __init__(self, body: Any, where: str) -> None:
        self._body = body
        self._where = where

    def read(self, amount: int = -1, /) -> bytes:
        try:
            return bytes(self._body.read(amount if amount >= 0 else None))
        except (BotoCoreError, ClientError, OSError) as exc:
            raise to_store_error(exc, f"source read {self._where}") from exc


class DistributionBucket:
    def __init__(self, client: S3Client, bucket: str, service_name: str = "") -> None:
        self._client = client
        self._bucket = bucket
        self._service = {"service": service_name} if service_name else {}

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise to_store_error(exc, "bundle lookup") from exc
        except BotoCoreError as exc:
            raise to_store_error(exc, "bundle lookup") from exc
        return True

    def put(self, key: str, body: IO[bytes], manifest: Manifest) -> bool:
        """Write the bundle unless ``key`` exists; True if this call wrote it."""
        body.seek(0)
        try:
            self._client.put_object(
                Bucket=self._bucket, Key=key, Body=body, IfNoneMatch="*",
                ContentType=CONTENT_TYPE,
                Metadata={"objects": str(len(manifest.objects)),
                          "missing": str(len(manifest.missing)),
                          "input-bytes": str(manifest.input_bytes), **self._service},
            )
        except ClientError as exc:
            code = _code(exc)
            if code == "PreconditionFailed":
                return False
            if code == "ConditionalRequestConflict":  # a concurrent write of the same key
                raise StoreError(f"bundle put: {code}", retryable=True, code=code) from exc
            raise to_store_error(exc, "bundle put") from exc
        except BotoCoreError as exc:
            raise to_store_error(exc, "bundle put") from exc
        return True
