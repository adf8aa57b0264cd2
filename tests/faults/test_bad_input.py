"""Every corpus case gets its defined outcome; valid records beside it are always processed."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.config import AggregatorConfig
from aggregator.handler import build_runtime, handle
from aggregator.pipeline import BatchResult, Stores, process_batch
from aggregator.stores import SnapshotStore
from local_aws.memory import MemoryDynamoDB, MemoryS3, table_definition
from streamagg_engine.stores import ArchiveStore
from streamagg_engine.windows import Window
from tests.bad_input import CORPUS, Case, build
from tests.factories import audit_removal, bucket_record

CONFIG = AggregatorConfig(table_name="usage", archive_bucket_name="archive", enable_refill=False,
                          snapshot_windows=(Window.HOURLY, Window.DAILY, Window.MONTHLY),
                          max_workers=2)


def usage_table() -> MemoryDynamoDB:
    ddb = MemoryDynamoDB()
    ddb.create_table(**table_definition(CONFIG.table_name, "PK", "SK"))
    return ddb


def run_batch(records: list[Any]) -> tuple[BatchResult, MemoryDynamoDB, MemoryS3]:
    ddb, s3 = usage_table(), MemoryS3()
    stores = Stores(snapshots=SnapshotStore(ddb, CONFIG), buckets=None,  # type: ignore[arg-type]
                    archive=ArchiveStore(s3, "archive"))  # type: ignore[arg-type]
    with ThreadPoolExecutor(2) as pool:
        result = process_batch(records, config=CONFIG, stores=stores, pool=pool, now_ms=0)
    return result, ddb, s3


def neighbours() -> list[Any]:
    return [bucket_record("MODIFY", {"tpm": 0}, {"tpm": 7000}, entity="good"),
            audit_removal(sequence="999")]


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_each_bad_input_has_its_defined_outcome(
    case: Case, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aggregator")
    result, ddb, _ = run_batch([*neighbours(), build(case)])
    assert result.failed_writes == 0
    skipped = [r for r in caplog.records if r.getMessage() == "skipped malformed record"]
    if case.outcome == "skipped":
        assert result.skipped_malformed == 1
        (entry,) = skipped
        assert case.reason in entry.reason  # type: ignore[attr-defined]
    else:
        assert result.skipped_malformed == 0
        assert skipped == []
    assert result.ignored == (1 if case.outcome == "ignored" else 0)
    # The valid neighbours were processed whatever the case was.
    good = [i for i in ddb.items("usage") if i.get("entity_id") == {"S": "good"}]
    assert {i["tpm"]["N"] for i in good} == {"7"}
    assert result.archived_records >= 1


def test_a_batch_near_the_6_mb_payload_limit_is_processed_whole() -> None:
    # 500 buckets, each consuming one token per record (its counters run on record to record).
    records = [bucket_record("MODIFY", {"tpm": i // 500 * 1000}, {"tpm": (i // 500 + 1) * 1000},
                             entity=f"e{i % 500}", extra={"pad": {"S": "p" * 1_400}})
               for i in range(3_600)]
    assert len(repr(records)) > 5_500_000
    result, ddb, _ = run_batch(records)
    assert (result.counted_records, result.failed_writes) == (3_600, 0)
    daily = [i for i in ddb.items("usage") if i["window"]["S"] == "daily"]
    assert sum(int(i["tpm"]["N"]) for i in daily) == 3_600


def test_the_lambda_entry_never_raises_for_data() -> None:
    runtime = build_runtime(CONFIG.to_env(), dynamodb=usage_table(), s3=MemoryS3())
    with contextlib.redirect_stdout(io.StringIO()):
        response = handle({"Records": [build(c) for c in CORPUS]}, runtime, now_ms=0)
    assert response == {"batchItemFailures": []}


# Fresh containers each draw: a shared st.just({}) would be mutated by later steps.
_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                  st.builds(dict), st.builds(list), st.builds(lambda: {"N": "x"}),
                  st.builds(lambda: {"S": 1}))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


VICTIMS = (bucket_record("MODIFY", {"tpm": 0}, {"tpm": 5000}, entity="victim", sequence="997"),
           audit_removal(sequence="998"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_records_never_stop_the_valid_ones(data: st.DataObject) -> None:
    victim = copy.deepcopy(data.draw(st.sampled_from(VICTIMS)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(victim)))
        parent = victim
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = data.draw(_leaf)
    result, ddb, _ = run_batch([victim, *neighbours()])
    assert result.failed_writes == 0
    good = [i for i in ddb.items("usage") if i.get("entity_id") == {"S": "good"}]
    assert {i["tpm"]["N"] for i in good} == {"7"}
