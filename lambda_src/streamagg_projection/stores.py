"""The projection's only AWS I/O: BatchWriteItem on the dashboard table.

BatchWriteItem succeeds even when DynamoDB wrote only part of the call, returning the
rest as ``UnprocessedItems`` (throttling of a partition, typically). botocore does not
retry those, so this adapter does: up to ``write_attempts`` calls, pausing with
exponential backoff and full jitter between them. What is still unprocessed after that
is handed back, not raised, so only the source items it belongs to are retried by Lambda.
Errors of the call itself go through :func:`streamagg_engine.stores.to_store_error`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamagg_engine.stores import AWS_FAILURES, to_store_error

from .config import ProjectionConfig

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class WriteOutcome:
    unprocessed: list[dict[str, Any]]
    """Requests DynamoDB still had not written after the last attempt."""
    calls: int
    """BatchWriteItem calls made (1 + retries of UnprocessedItems)."""


class DashboardStore:
    """Writes chunks of at most 25 put/delete requests to one table."""

    def __init__(self, client: DynamoDBClient, config: ProjectionConfig, *,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self._client = client
        self._table = config.dashboard_table_name
        self._attempts = config.write_attempts
        self._base = config.backoff_base_seconds
        self._cap = config.backoff_max_seconds
        self._sleep = sleep
        self._rng = rng or random.Random()

    def write(self, requests: Sequence[dict[str, Any]]) -> WriteOutcome:
        pending = list(requests)
        calls = 0
        while pending and calls < self._attempts:
            if calls:
                self._sleep(self._rng.uniform(0, min(self._cap, self._base * 2 ** (calls - 1))))
            calls += 1
            try:
                response = self._client.batch_write_item(
                    RequestItems={self._table: pending})  # type: ignore[dict-item]
            except AWS_FAILURES as exc:
                raise to_store_error(exc, "dashboard batch write") from exc
            left: Any = response.get("UnprocessedItems", {}).get(self._table, [])
            pending = list(left)
        return WriteOutcome(unprocessed=pending, calls=calls)
