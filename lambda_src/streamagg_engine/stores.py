"""The AWS adapters every pipeline shares, and the one place that sorts AWS failures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from .errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_RETRYABLE = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "SlowDown", "TransactionConflictException",
    "RequestTimeout", "RequestTimeoutException", "LimitExceededException",
})


REJECTED = frozenset({"ValidationException", "SerializationException"})
"""What DynamoDB answers for a request it refuses for what it carries (a key or item over
its limits, an empty index key, invalid UTF-8): the same request fails every time."""
SOURCE_UNREADABLE = frozenset({
    "NoSuchBucket", "NoSuchVersion", "InvalidBucketName", "AccessDenied",
    "AllAccessDisabled", "InvalidArgument", "InvalidObjectState", "KeyTooLongError",
})
"""What S3 answers for an object that cannot be read whatever the retry: reading a source
object names the bucket, key and version an event announced, so these are the object's
own problem. On a write to the pipeline's own bucket, ``AccessDenied`` is a deployment
problem instead: only reads of announced objects pass these codes as permanent."""
AWS_FAILURES = (ClientError, BotoCoreError, UnicodeError)
"""What an SDK call can raise: botocore's errors, and ``UnicodeEncodeError`` from
serializing a string that is not valid Unicode (a lone surrogate)."""


def to_store_error(exc: Exception, action: str,
                   permanent_codes: frozenset[str] = REJECTED) -> StoreError:
    """The one place that sorts AWS failures into retryable, failed and permanent.

    ``permanent_codes`` are the error codes that reject the request for what it carried
    (see :class:`StoreError`); a request the SDK refused to send (parameter validation,
    a string it cannot encode) is permanent too: it would be refused the same way again.
    """
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return StoreError(f"{action}: {code}: {exc}", retryable=code in _RETRYABLE, code=code,
                          permanent=code in permanent_codes)
    if isinstance(exc, ParamValidationError | UnicodeError):
        return StoreError(f"{action}: {exc}", retryable=False, code=type(exc).__name__,
                          permanent=True)
    return StoreError(f"{action}: {exc}", retryable=True, code=type(exc).__name__)


class ArchiveStore:
    """Puts archive objects; the same key and bytes on a retry make the PUT idempotent."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put(self, key: str, body: bytes, *, content_type: str, content_encoding: str,
            metadata: Mapping[str, str] | None = None) -> None:
        """``metadata``: the object's user metadata (``x-amz-meta-*``), so a reader can
        tell what an object holds without fetching it."""
        try:
            if metadata:
                self._client.put_object(
                    Bucket=self._bucket, Key=key, Body=body, ContentType=content_type,
                    ContentEncoding=content_encoding, Metadata=dict(metadata))
            else:
                self._client.put_object(
                    Bucket=self._bucket, Key=key, Body=body,
                    ContentType=content_type, ContentEncoding=content_encoding,
                )
        except AWS_FAILURES as exc:
            raise to_store_error(exc, "archive put") from exc
