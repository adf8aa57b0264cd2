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
    """A write to DynamoDB or S3 failed after the SDK's own retries."""

    def __init__(self, message: str, *, retryable: bool, code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
