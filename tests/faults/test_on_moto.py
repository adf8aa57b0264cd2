"""The same proof, smaller, against moto's server; and the in-memory AWS checked against it."""

from __future__ import annotations

from aggregator.maintenance import BucketMaintenance, bucket_states
from local_aws.harness import BUCKET, TABLE, compare, generate_workload, memory_stores, run
from local_aws.memory import table_definition
from tests.factories import bucket_record, n
from tests.moto_fixtures import LocalAws


def _moto_table(aws: LocalAws) -> None:
    aws.ddb.create_table(**table_definition(TABLE, "PK", "SK"))
    aws.s3.create_bucket(Bucket=BUCKET)


def _reset(aws: LocalAws) -> None:
    for name in aws.ddb.list_tables()["TableNames"]:
        if name == TABLE:
            aws.ddb.delete_table(TableName=name)
    if BUCKET in {b["Name"] for b in aws.s3.list_buckets()["Buckets"]}:
        for obj in aws.s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            aws.s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
        aws.s3.delete_bucket(Bucket=BUCKET)


def test_counts_are_exact_under_faults_on_moto(aws: LocalAws) -> None:
    _reset(aws)
    _moto_table(aws)
    workload = generate_workload(21, 400, entities=30)
    result = run(workload, seed=21, ddb=aws.ddb, s3=aws.s3, lanes=2)
    differences = compare(workload, aws.items(TABLE), aws.objects(BUCKET).values())
    assert not differences, differences
    assert result.storage_faults.get("lost_response", 0) > 0
    assert result.given_up == 0


def test_the_in_memory_aws_writes_what_moto_writes(aws: LocalAws) -> None:
    """The fakes behind the large proof answer our requests exactly as moto does."""
    _reset(aws)
    _moto_table(aws)
    workload = generate_workload(5, 250, entities=15)
    memory, memory_s3 = memory_stores()
    quiet = {"throttle_rate": 0.0, "lost_response_rate": 0.1, "crash_rate": 0.0,
             "redeliver_rate": 0.2, "lanes": 1}
    run(workload, seed=5, ddb=memory, s3=memory_s3, **quiet)  # type: ignore[arg-type]
    run(workload, seed=5, ddb=aws.ddb, s3=aws.s3, **quiet)  # type: ignore[arg-type]
    in_memory = sorted(memory.items(TABLE), key=lambda i: (i["PK"]["S"], i["SK"]["S"]))
    on_moto = sorted(aws.items(TABLE), key=lambda i: (i["PK"]["S"], i["SK"]["S"]))
    assert in_memory == on_moto
    assert {key: body for (_, key), body in memory_s3.objects.items()} == aws.objects(BUCKET)


def test_a_redelivered_refill_is_applied_once(aws: LocalAws) -> None:
    table, _ = aws.create_table()
    record = bucket_record("MODIFY", {"rpm": 0}, {"rpm": 200_000}, entity="hot",
                           tk={"rpm": 0}, rf=1000)
    item = record["dynamodb"]["NewImage"]
    aws.ddb.put_item(TableName=table, Item=item)
    (state,) = bucket_states([record])
    store = BucketMaintenance(aws.ddb, table)
    assert store.refill(state, 31_000) == "written"
    assert store.refill(state, 31_000) == "lost_race"  # the same batch again: rf moved on
    after = aws.ddb.get_item(TableName=table, Key={"PK": item["PK"], "SK": item["SK"]})["Item"]
    assert after["b_rpm_tk"] == n(50_000)
    assert after["rf"] == n(31_000)
