"""The in-memory DynamoDB against moto's server, request by request.

Each script sends the request shapes one pipeline's adapters send, conditions failing
and holding, to both; every answer (success, error code, cancellation reasons) and the
final table must agree. The proofs' whole-pipeline contracts (``tests/faults``,
``tests/events``) add volume; these pin the edges a pipeline meets rarely.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local_aws.memory import MemoryDynamoDB, table_definition
from local_aws.server import MotoServer, client

_names = itertools.count(1)
Script = Callable[[Any, str], list[Any]]
"""Sends requests to a client and table; returns what each answered."""


def _outcome(call: Callable[[], Any]) -> Any:
    """What a caller can observe: the answer's payload or the error's code and reasons."""
    try:
        response = call()
    except ClientError as exc:
        reasons = [{k: v for k, v in reason.items() if k in ("Code", "Item")}
                   for reason in exc.response.get("CancellationReasons", [])]
        return (exc.response["Error"]["Code"], reasons, exc.response.get("Item"))
    for metadata in ("ResponseMetadata", "ConsumedCapacity", "ItemCollectionMetrics"):
        response.pop(metadata, None)
    return response


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: int | str) -> dict[str, str]:
    return {"N": str(value)}


def usage_snapshots(ddb: Any, table: str) -> list[Any]:
    """The usage aggregator: watermark-guarded SET/ADD/if_not_exists, ALL_OLD on failure,
    and the refill's ``rf`` lock with ``<=`` pins."""
    key = {"PK": s("ns/ENTITY#e1"), "SK": s("#USAGE#gpt-4#hourly#2026-01-31T21:00:00Z")}
    names = {"#w0": "wm_a", "#events": "total_events", "#c0": "tpm", "#ttl": "ttl"}

    def snapshot(first: str, last: str, amount: int) -> Callable[[], Any]:
        return lambda: ddb.update_item(
            TableName=table, Key=key, ReturnValuesOnConditionCheckFailure="ALL_OLD",
            UpdateExpression="SET #ttl = if_not_exists(#ttl, :ttl), #w0 = :w0 "
                             "ADD #events :events, #c0 :c0",
            ConditionExpression="(attribute_not_exists(#w0) OR #w0 < :f0)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":ttl": n(first), ":w0": s(last), ":f0": s(first),
                                       ":events": n(1), ":c0": n(amount)})

    bucket = {"PK": s("ns/BUCKET#e1#gpt-4#0"), "SK": s("#STATE")}
    ddb.put_item(TableName=table, Item={**bucket, "rf": n(1000), "b_rpm_tk": n(5)})

    def refill(expected: int, read: int) -> Callable[[], Any]:
        return lambda: ddb.update_item(
            TableName=table, Key=bucket, UpdateExpression="SET #rf = :rf ADD #t0 :d0",
            ConditionExpression="#rf = :expected AND #t0 <= :r0",
            ExpressionAttributeNames={"#rf": "rf", "#t0": "b_rpm_tk"},
            ExpressionAttributeValues={":rf": n(2000), ":expected": n(expected),
                                       ":d0": n(50), ":r0": n(read)})

    return [_outcome(call) for call in (
        snapshot("0005", "0009", 7), snapshot("0005", "0009", 7), snapshot("0010", "0012", -2),
        snapshot("0011", "0013", 1), refill(1000, 4), refill(1000, 5), refill(1000, 5),
        lambda: ddb.get_item(TableName=table, Key=key, ConsistentRead=True))]


def event_counters(ddb: Any, table: str) -> list[Any]:
    """The event pipeline: marker Puts with ``attribute_not_exists`` beside counter ADDs in
    one transaction; string-set ADDs; BatchGetItem of markers."""
    def marker(event_id: str) -> dict[str, Any]:
        return {"Put": {"TableName": table, "Item": {"pk": s(f"EVENT#{event_id}"),
                                                     "sk": s("MARKER")},
                        "ConditionExpression": "attribute_not_exists(#pk)",
                        "ExpressionAttributeNames": {"#pk": "pk"}}}

    counter = {"Update": {
        "TableName": table, "Key": {"pk": s("EXP#x"), "sk": s("hourly#T#VARIANT#a")},
        "UpdateExpression": "SET #exp = :exp ADD #a0 :a0, #a1 :a1",
        "ExpressionAttributeNames": {"#exp": "experiment_id", "#a0": "events", "#a1": "s_buy"},
        "ExpressionAttributeValues": {":exp": s("x"), ":a0": n(2), ":a1": n("12.5")}}}
    users = {"pk": s("EXP#x"), "sk": s("hourly#T#VARIANT#a#USERS#0")}

    def add_users(*members: str) -> Callable[[], Any]:
        return lambda: ddb.update_item(
            TableName=table, Key=users, UpdateExpression="SET #exp = :exp ADD #users :users",
            ExpressionAttributeNames={"#exp": "experiment_id", "#users": "users"},
            ExpressionAttributeValues={":exp": s("x"), ":users": {"SS": list(members)}})

    return [_outcome(call) for call in (
        lambda: ddb.transact_write_items(TransactItems=[marker("1"), marker("2"), counter]),
        lambda: ddb.transact_write_items(TransactItems=[marker("3"), marker("2"), counter]),
        lambda: ddb.transact_write_items(TransactItems=[marker("3"), counter]),
        add_users("bob", "alice"), add_users("alice", "carol"),
        lambda: _sorted_responses(ddb.batch_get_item(RequestItems={table: {
            "Keys": [{"pk": s(f"EVENT#{i}"), "sk": s("MARKER")} for i in "1234"],
            "ConsistentRead": True}}), table))]


def _sorted_responses(response: dict[str, Any], table: str) -> dict[str, Any]:
    response["Responses"][table].sort(key=lambda item: item["pk"]["S"])
    return response


def bundle_claims(ddb: Any, table: str) -> list[Any]:
    """The bundler: claims Put in one transaction with ALL_OLD on failure, a lease takeover
    conditioned on two attributes, completion conditioned on ``attribute_exists``."""
    def claim(bundle: str, *objects: str) -> Callable[[], Any]:
        items = [{"pk": s(f"bundle#{bundle}"), "status": s("pending"), "lease": n(10)}] + \
            [{"pk": s(f"object#{o}"), "bundle": s(bundle)} for o in objects]
        return lambda: ddb.transact_write_items(TransactItems=[{"Put": {
            "TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}} for item in items])

    def take_over(bundle: str, old: int) -> Callable[[], Any]:
        return lambda: ddb.update_item(
            TableName=table, Key={"pk": s(f"bundle#{bundle}")},
            UpdateExpression="SET #owner = :owner, #lease = :lease",
            ConditionExpression="#status = :pending AND #lease = :old",
            ExpressionAttributeNames={"#owner": "owner", "#lease": "lease", "#status": "status"},
            ExpressionAttributeValues={":owner": s("me"), ":lease": n(20),
                                       ":pending": s("pending"), ":old": n(old)})

    def complete(bundle: str) -> Callable[[], Any]:
        return lambda: ddb.update_item(
            TableName=table, Key={"pk": s(f"bundle#{bundle}")},
            UpdateExpression="SET #status = :done", ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":done": s("done")})

    return [_outcome(call) for call in (
        claim("b1", "o1", "o2"), claim("b2", "o2", "o3"), claim("b2", "o3"),
        take_over("b1", 99), take_over("b1", 10), take_over("b1", 10),
        complete("b1"), complete("gone"),
        lambda: ddb.get_item(TableName=table, Key={"pk": s("object#o2")}, ConsistentRead=True))]


def dashboard_writes(ddb: Any, table: str) -> list[Any]:
    """The projection: BatchWriteItem of puts and deletes (deleting what is not there is
    fine); single puts and deletes with conditions, as tests and tools send them."""
    def key(sk: str) -> dict[str, Any]:
        return {"day_partition": s("2026-03-02"), "sk": s(sk)}

    def put(sk: str, score: str) -> dict[str, Any]:
        return {"PutRequest": {"Item": {**key(sk), "score": n(score)}}}

    def delete(sk: str) -> dict[str, Any]:
        return {"DeleteRequest": {"Key": key(sk)}}

    return [_outcome(call) for call in (
        lambda: ddb.batch_write_item(RequestItems={table: [put("a", "0.5"), put("b", "0.7"),
                                                           delete("never")]}),
        lambda: ddb.batch_write_item(RequestItems={table: [delete("a"), put("d", "0.9")]}),
        lambda: ddb.put_item(TableName=table, Item={**key("b"), "score": n(1)},
                             ConditionExpression="attribute_not_exists(sk)"),
        lambda: ddb.delete_item(TableName=table, Key=key("b"),
                                ConditionExpression="NOT #score > :low",
                                ExpressionAttributeNames={"#score": "score"},
                                ExpressionAttributeValues={":low": n("0.5")}),
        lambda: ddb.delete_item(TableName=table, Key=key("b"),
                                ConditionExpression="#score >= :low AND begins_with(sk, :b)",
                                ExpressionAttributeNames={"#score": "score"},
                                ExpressionAttributeValues={":low": n("0.5"), ":b": s("b")}),
        lambda: ddb.get_item(TableName=table, Key=key("missing")))]


SCRIPTS: list[tuple[Script, tuple[str, ...]]] = [
    (usage_snapshots, ("PK", "SK")), (event_counters, ("pk", "sk")),
    (bundle_claims, ("pk",)), (dashboard_writes, ("day_partition", "sk")),
]


def _normal(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items in a fixed order, set members sorted: DynamoDB's sets have no order."""
    return sorted(({name: {kind: sorted(value) if kind.endswith("S") and kind != "S" else value
                           for kind, value in attribute.items()}
                    for name, attribute in item.items()} for item in items), key=repr)


def _scan(ddb: Any, table: str) -> list[dict[str, Any]]:
    pages = ddb.get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page["Items"]]


@pytest.mark.parametrize(("script", "keys"), SCRIPTS, ids=[s.__name__ for s, _ in SCRIPTS])
def test_the_in_memory_dynamodb_answers_like_moto(
        moto: MotoServer, script: Script, keys: tuple[str, ...]) -> None:
    table = f"contract-{next(_names)}"
    ddb, memory = client("dynamodb", moto.endpoint_url), MemoryDynamoDB()
    for store in (ddb, memory):
        store.create_table(**table_definition(table, *keys))

    on_moto, in_memory = script(ddb, table), script(memory, table)

    assert in_memory == on_moto
    assert _normal(memory.items(table)) == _normal(_scan(ddb, table))
    assert any(isinstance(answer, tuple) for answer in on_moto)  # some condition failed


def test_a_batch_write_naming_a_key_twice_is_refused_as_dynamodb_does() -> None:
    """moto accepts it; DynamoDB answers ValidationException, and the projection's
    coalescing exists because of that, so the fake follows DynamoDB."""
    memory = MemoryDynamoDB()
    memory.create_table(**table_definition("t", "pk"))
    twice = [{"PutRequest": {"Item": {"pk": s("a")}}}, {"DeleteRequest": {"Key": {"pk": s("a")}}}]
    with pytest.raises(ClientError, match="ValidationException"):
        memory.batch_write_item(RequestItems={"t": twice})
    assert memory.items("t") == []


def test_what_the_fake_does_not_model_raises_instead_of_guessing() -> None:
    memory = MemoryDynamoDB()
    memory.create_table(**table_definition("t", "pk"))
    with pytest.raises(NotImplementedError):
        memory.update_item(TableName="t", Key={"pk": s("a")}, UpdateExpression="SET a.b = :v",
                           ExpressionAttributeValues={":v": n(1)})
    with pytest.raises(NotImplementedError):
        memory.put_item(TableName="t", Item={"pk": s("a")},
                        ConditionExpression="size(pk) > :n",
                        ExpressionAttributeValues={":n": n(1)})
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        memory.get_item(TableName="missing", Key={"pk": s("a")})
