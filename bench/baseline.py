"""The naive baseline every figure is compared with, in the seeds' style.

It does what zae-limiter's own aggregator (``zae_limiter_aggregator``, the seed of this
project) does, the straightforward way: boto3's ``TypeDeserializer`` on whole images,
bucket images parsed once for the deltas and again for the refill states, one
``UpdateItem`` per record, limit and window (values serialized with ``TypeSerializer``, as
boto3's ``Table`` resource does), one refill per bucket, every audit record of the batch
in one gzip JSONL object (the seed files it under the earliest event's day), and all
calls made one after the other. It is a yardstick, not a reference: like the seed it
floors each record's delta on its own (fractions of a token are lost) and is not
exactly-once.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

WINDOWS = ("hourly", "daily")
TTL_DAYS = 90


@dataclass
class NaivePlan:
    """What a batch turns into: one update per record, limit and window; refills; puts."""

    updates: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    """(delta, window) per snapshot update."""
    refills: list[dict[str, Any]] = field(default_factory=list)
    puts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.updates) + len(self.refills) + len(self.puts)


@dataclass
class _BucketState:
    pk: str
    sk: str
    rf: int
    shard_count: int
    limits: dict[str, dict[str, int]]
    consumed: dict[str, int] = field(default_factory=dict)


class NaiveAggregator:
    """Plans a batch (pure), builds its requests, sends them one by one, the seed's way."""

    def __init__(self, table_name: str = "rate-limits", bucket: str = "archive") -> None:
        self.table_name = table_name
        self.bucket = bucket
        self._deserializer = TypeDeserializer()
        self._serializer = TypeSerializer()

    def plan(self, records: Sequence[dict[str, Any]], now_ms: int) -> NaivePlan:
        """Decode and aggregate: deltas per record and limit, refills, the archive body."""
        plan = NaivePlan()
        for record in records:
            if record.get("eventName") != "MODIFY":
                continue
            for delta in self._deltas(record):
                for window in WINDOWS:
                    delta[window] = self._window_key(delta["timestamp_ms"], window)
                    plan.updates.append((delta, window))
        for state in self._bucket_states(records).values():
            refill = self._refill(state, now_ms)
            if refill is not None:
                plan.refills.append(refill)
        events = [e for r in records if (e := self._audit_event(r)) is not None]
        if events:
            plan.puts.append(self._archive_put(events))
        return plan

    def requests(self, plan: NaivePlan, now_ms: int) -> list[dict[str, Any]]:
        """The UpdateItem parameters of every snapshot update (refills are built in plan)."""
        return [self._snapshot_update(delta, window, now_ms) for delta, window in plan.updates]

    def send(self, plan: NaivePlan, now_ms: int, dynamodb: Any, s3: Any) -> None:
        for request in self.requests(plan, now_ms) + plan.refills:
            dynamodb.update_item(**request)
        for put in plan.puts:
            s3.put_object(**put)

    # -- parsing: whole images through TypeDeserializer, per record --------------------

    def _image(self, record: dict[str, Any], name: str) -> dict[str, Any]:
        image = record.get("dynamodb", {}).get(name, {})
        return {k: self._deserializer.deserialize(v) for k, v in image.items()}

    def _parsed_bucket(self, record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        new, old = self._image(record, "NewImage"), self._image(record, "OldImage")
        if "/BUCKET#" not in str(new.get("PK", "")):
            return {}, {}
        return new, old

    def _deltas(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        new, old = self._parsed_bucket(record)
        if not new:
            return []
        created = int(record["dynamodb"]["ApproximateCreationDateTime"] * 1000)
        namespace = str(new["PK"]).split("/", 1)[0]
        deltas = []
        for attribute, value in new.items():
            if not (attribute.startswith("b_") and attribute.endswith("_tc")):
                continue
            limit = attribute[2:-3]
            if limit == "wcu" or attribute not in old:
                continue
            delta = int(Decimal(value) - Decimal(old[attribute]))
            if delta:
                deltas.append({"namespace": namespace, "entity": new["entity_id"],
                               "resource": new["resource"], "limit": limit,
                               "tokens": delta // 1000, "timestamp_ms": created})
        return deltas

    @staticmethod
    def _window_key(timestamp_ms: int, window: str) -> str:
        moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
        return moment.strftime({"hourly": "%Y-%m-%dT%H:00:00Z", "daily": "%Y-%m-%dT00:00:00Z",
                                "monthly": "%Y-%m-01T00:00:00Z"}[window])

    def _snapshot_update(self, delta: dict[str, Any], window: str, now_ms: int) -> dict[str, Any]:
        key = delta[window]
        ns, entity, resource = delta["namespace"], delta["entity"], delta["resource"]
        values = {
            ":entity_id": entity, ":resource": resource, ":window": window,
            ":window_start": key, ":gsi2pk": f"{ns}/RESOURCE#{resource}",
            ":gsi2sk": f"USAGE#{key}#{entity}", ":gsi4pk": ns, ":gsi4sk": f"{ns}/ENTITY#{entity}",
            ":ttl": now_ms // 1000 + TTL_DAYS * 86_400, ":delta": delta["tokens"], ":one": 1,
        }
        return {
            "TableName": self.table_name,
            "Key": self._serialize({"PK": f"{ns}/ENTITY#{entity}",
                                    "SK": f"#USAGE#{resource}#{key}"}),
            "UpdateExpression": (
                "SET entity_id = :entity_id, #resource = if_not_exists(#resource, :resource), "
                "#window = if_not_exists(#window, :window), "
                "#window_start = if_not_exists(#window_start, :window_start), "
                "GSI2PK = :gsi2pk, GSI2SK = :gsi2sk, GSI4PK = if_not_exists(GSI4PK, :gsi4pk), "
                "GSI4SK = if_not_exists(GSI4SK, :gsi4sk), #ttl = if_not_exists(#ttl, :ttl) "
                "ADD #limit_name :delta, #total_events :one"
            ),
            "ExpressionAttributeNames": {
                "#resource": "resource", "#window": "window", "#window_start": "window_start",
                "#limit_name": delta["limit"], "#total_events": "total_events", "#ttl": "ttl",
            },
            "ExpressionAttributeValues": self._serialize(values),
        }

    def _serialize(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self._serializer.serialize(v) for k, v in values.items()}

    # -- refill: the bucket images parsed a second time ---------------------------------

    def _bucket_states(self, records: Sequence[dict[str, Any]]) -> dict[str, _BucketState]:
        states: dict[str, _BucketState] = {}
        for record in records:
            if record.get("eventName") != "MODIFY":
                continue
            new, old = self._parsed_bucket(record)
            if not new:
                continue
            limits: dict[str, dict[str, int]] = {}
            for attribute, value in new.items():
                if attribute.startswith("b_") and attribute.count("_") >= 2:
                    name, _, part = attribute[2:].rpartition("_")
                    limits.setdefault(name, {})[part] = int(value)
            pk = str(new["PK"])
            previous = states.get(pk)
            state = _BucketState(pk, str(new["SK"]), int(new["rf"]),
                                 int(new.get("shard_count", 1)), limits,
                                 previous.consumed if previous else {})
            for name, fields in limits.items():
                if "tc" in fields and f"b_{name}_tc" in old:
                    state.consumed[name] = state.consumed.get(name, 0) + fields["tc"] - int(
                        old[f"b_{name}_tc"])
            states[pk] = state
        return states

    def _refill(self, state: _BucketState, now_ms: int) -> dict[str, Any] | None:
        elapsed = now_ms - state.rf
        deltas, needed = {}, False
        for name, f in state.limits.items():
            if not {"tk", "cp", "ra", "rp"} <= f.keys() or elapsed <= 0 or f["rp"] <= 0:
                continue
            ceiling, amount = f["cp"] // state.shard_count, f["ra"] // state.shard_count
            projected = min(ceiling, f["tk"] + elapsed * amount // f["rp"])
            if projected > f["tk"]:
                deltas[name] = projected - f["tk"]
                needed = needed or projected < max(0, state.consumed.get(name, 0))
        if not needed:
            return None
        names = {"#rf": "rf"} | {f"#t{i}": f"b_{n}_tk" for i, n in enumerate(deltas)}
        values: dict[str, Any] = {":rf": now_ms, ":expected": state.rf}
        values |= {f":d{i}": d for i, d in enumerate(deltas.values())}
        return {
            "TableName": self.table_name,
            "Key": self._serialize({"PK": state.pk, "SK": state.sk}),
            "UpdateExpression": "SET #rf = :rf ADD " + ", ".join(
                f"#t{i} :d{i}" for i in range(len(deltas))),
            "ConditionExpression": "#rf = :expected",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": self._serialize(values),
        }

    # -- archive: one object per batch ---------------------------------------------------

    def _audit_event(self, record: dict[str, Any]) -> dict[str, Any] | None:
        if record.get("eventName") != "REMOVE":
            return None
        old = self._image(record, "OldImage")
        if "/AUDIT#" not in str(old.get("PK", "")):
            return None
        identity = record.get("userIdentity") or {}
        return {
            "event_id": old.get("event_id"), "entity_id": old.get("entity_id"),
            "action": old.get("action"), "timestamp": old.get("timestamp"),
            "principal": old.get("principal"), "resource": old.get("resource"),
            "details": old.get("details", {}),
            "removal": "ttl" if identity.get("principalId") == "dynamodb.amazonaws.com"
            else "manual",
        }

    def _archive_put(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        lines = [json.dumps(e, separators=(",", ":"), default=str) for e in events]
        body = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"))
        earliest = min(str(e.get("timestamp", "")) for e in events)
        day = earliest[:10].split("-")
        key = f"audit/year={day[0]}/month={day[1]}/day={day[2]}/audit-{earliest}.jsonl.gz"
        return {"Bucket": self.bucket, "Key": key, "Body": body,
                "ContentType": "application/x-ndjson", "ContentEncoding": "gzip"}
