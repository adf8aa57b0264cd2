"""The AWS adapters every pipeline shares, and the one place that sorts AWS failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from .errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_RETRYABLE = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "SlowDown", "TransactionConflictException",
    "RequestTimeout", "RequestTimeoutException", "LimitExceededException",
})


def to_store_error(exc: Exception, action: str) -> StoreError:
    """The one place that sorts AWS failures into retryable and permanent."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return StoreError(f"{action}: {code}: {exc}", retryable=code in _RETRYABLE, code=code)
    return StoreError(f"{action}: {exc}", retryable=True, code=type(exc).__name__)


class ArchiveStore:
    """Puts archive objects; the same key and bytes on a retry make the PUT idempotent."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put(self, key: str, body: bytes, *, content_type: str, content_encoding: str) -> None:
        try:
            self._client.put_object(
                Bucket=self._bucket, Key=key, Body=body,
                ContentType=content_type, ContentEncoding=content_encoding,
            )
        except (ClientError, BotoCoreError) as exc:
            raise to_store_error(exc, "archive put") from exc
