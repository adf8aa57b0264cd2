"""Builders of Lambda-shaped DynamoDB stream records in zae-limiter's schema."""

from __future__ import annotations

import itertools
from typing import Any

from local_aws.stream_records import TTL_IDENTITY, lambda_record

NS = "nsA1b2C3d4E"
_sequence = itertools.count(1_000_000_000_000_000_000)


def n(value: int | str) -> dict[str, str]:
    return {"N": str(value)}


def s(value: str) -> dict[str, str]:
    return {"S": value}


def next_sequence() -> str:
    return str(next(_sequence))


def bucket_image(
    entity: str = "user-1",
    resource: str = "gpt-4",
    *,
    tc: dict[str, int],
    tk: dict[str, int] | None = None,
    cp: int = 100_000,
    ra: int = 100_000,
    rp: int = 60_000,
    rf: int = 1_700_000_000_000,
    shard: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    image: dict[str, Any] = {
        "PK": s(f"{NS}/BUCKET#{entity}#{resource}#{shard}"),
        "SK": s("#STATE"),
        "entity_id": s(entity),
        "resource": s(resource),
        "rf": n(rf),
        "shard_count": n(1),
    }
    for name, total in tc.items():
        image[f"b_{name}_tc"] = n(total)
        image[f"b_{name}_tk"] = n((tk or {}).get(name, cp - total))
        image[f"b_{name}_cp"] = n(cp)
        image[f"b_{name}_ra"] = n(ra)
        image[f"b_{name}_rp"] = n(rp)
    image.update(extra or {})
    return image


def stream_record(
    event_name: str,
    *,
    keys: dict[str, Any],
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    created: float = 1_700_000_000.0,
    sequence: str | None = None,
    user_identity: dict[str, str] | None = None,
) -> dict[str, Any]:
    return lambda_record(event_name, keys=keys, sequence=sequence or next_sequence(),
                         created=created, old=old, new=new, user_identity=user_identity)


def bucket_record(
    event_name: str,
    old_tc: dict[str, int] | None,
    new_tc: dict[str, int],
    *,
    entity: str = "user-1",
    resource: str = "gpt-4",
    created: float = 1_700_000_000.0,
    sequence: str | None = None,
    **image: Any,
) -> dict[str, Any]:
    new = bucket_image(entity, resource, tc=new_tc, **image)
    old = bucket_image(entity, resource, tc=old_tc, **image) if old_tc is not None else None
    keys = {"PK": new["PK"], "SK": new["SK"]}
    return stream_record(event_name, keys=keys, old=old, new=new, created=created,
                         sequence=sequence)


def audit_image(
    entity: str = "user-1",
    event_id: str = "01JAUDIT000000000000000001",
    *,
    action: str | None = "limits_set",
    timestamp: str = "2023-11-14T22:13:20Z",
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    image: dict[str, Any] = {
        "PK": s(f"{NS}/AUDIT#{entity}"),
        "SK": s(f"#AUDIT#{event_id}"),
        "entity_id": s(entity),
        "event_id": s(event_id),
        "timestamp": s(timestamp),
        "principal": s("arn:aws:sts::123456789012:user/ops"),
        "resource": s("gpt-4"),
        "details": details if details is not None else {"M": {"limits": {"L": [
            {"M": {"name": s("rpm"), "capacity": n(100), "burst": {"NULL": True},
                   "soft": {"BOOL": False}}},
        ]}}},
        "ttl": n(1_700_000_000),
    }
    if action is not None:
        image["action"] = s(action)
    return image


TTL = TTL_IDENTITY


def audit_removal(image: dict[str, Any] | None = None, *, ttl: bool = True,
                  created: float = 1_700_000_000.0, sequence: str | None = None) -> dict[str, Any]:
    old = image or audit_image()
    return stream_record("REMOVE", keys={"PK": old["PK"], "SK": old["SK"]}, old=old,
                         created=created, sequence=sequence, user_identity=TTL if ttl else None)
