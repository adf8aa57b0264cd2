"""The aggregator's exceptions, sorted by what the caller should do about them."""

from __future__ import annotations


class AggregatorError(Exception):
    """Base class of everything this package raises on purpose."""


class ConfigError(AggregatorError, ValueError):
    """A setting is invalid; the message starts with the setting's name."""


class MalformedRecordError(AggregatorError):
    """A stream record cannot be used; it is logged with its reason and skipped."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreError(AggregatorError):
    """A write to DynamoDB or S3 failed after the SDK's own retries.

    Three classes, set by :func:`streamagg_engine.stores.to_store_error` alone:

    * ``retryable``: a transient failure (throttling, a 5xx, a timeout); trying the same
      request again, now or on Lambda's retry, may succeed.
    * neither: the request cannot succeed until someone fixes the deployment (access
      denied, a table or bucket missing); the records go back to Lambda, which retries
      them until the cause is fixed or they reach the DLQ.
    * ``permanent``: the service refused the request for what it carried (a key or item
      over DynamoDB's limits, an invalid name); it fails the same way on every attempt,
      so the records it carried are skipped with a log line, never retried, and a
      request of several records is split until the offending one is known.
    """

    def __init__(self, message: str, *, retryable: bool, code: str = "",
                 permanent: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable and not permanent
        self.code = code
        self.permanent = permanent
