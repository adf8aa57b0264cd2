"""Lambda-shaped DynamoDB Streams records, built from images (tests, benchmarks, the proof)."""

from __future__ import annotations

from typing import Any

STREAM_ARN = ("arn:aws:dynamodb:us-east-1:123456789012:table/rate-limits/stream/"
              "2026-01-01T00:00:00.000")
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
"""What DynamoDB's TTL service puts on the REMOVE records of the items it expires."""


def lambda_record(
    event_name: str,
    *,
    keys: dict[str, Any],
    sequence: str,
    created: float,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    user_identity: dict[str, str] | None = None,
    event_id: str | None = None,
    size_bytes: int = 100,
) -> dict[str, Any]:
    """One record as Lambda hands it to the function (``created`` in epoch seconds)."""
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": created,
        "Keys": keys,
        "SequenceNumber": sequence,
        "SizeBytes": size_bytes,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        body["OldImage"] = old
    if new is not None:
        body["NewImage"] = new
    record: dict[str, Any] = {
        "eventID": event_id or f"evt-{sequence}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": body,
        "eventSourceARN": STREAM_ARN,
    }
    if user_identity is not None:
        record["userIdentity"] = user_identity
    return record
