"""Seed 003's error metrics per stage: parse, validation, enrichment, aggregation, archive.

Each counts the records (events) its stage failed, skipped or handed back to Lambda, next
to ``RecordsSkipped``/``FailedWrites``, which the alarms read; the handler's EMF line
carries them as ``ParseErrors``, ``ValidationErrors``, ``EnrichmentErrors``,
``AggregationErrors`` and ``ArchiveErrors``.
"""

from __future__ import annotations

import json
import time

import pytest

from local_aws.events_harness import generate_workload
from local_aws.memory import table_definition
from local_aws.server import MotoServer, client
from streamagg_events.config import EventMetricsConfig
from streamagg_events.handler import build_runtime, handle
from streamagg_events.pipeline import BatchResult

from .support import Memory, document, raw_record, record
from .test_pipeline import Failing

STAGES = ("parse_errors", "validation_errors", "enrichment_errors", "aggregation_errors",
          "archive_errors")


def _stages(result: BatchResult) -> dict[str, int]:
    return {stage: getattr(result, stage) for stage in STAGES}


def test_each_skipped_record_is_counted_at_the_stage_that_refused_it() -> None:
    result = Memory().process([
        record("!!!", 20), raw_record(b"{oops", 21), record(document(3, user_id=None), 22),
        record(document(4, experiment_id="retired"), 23), record(document(5), 24),
    ])
    assert result.skipped_malformed == 4
    assert _stages(result) == {"parse_errors": 2, "validation_errors": 1,
                               "enrichment_errors": 1, "aggregation_errors": 0,
                               "archive_errors": 0}


@pytest.mark.parametrize(("ports", "stage"), [
    ({"s3": "put_object"}, "archive_errors"),
    ({"ddb": "transact_write_items"}, "aggregation_errors"),
    ({"ddb": "batch_get_item"}, "enrichment_errors"),
])
def test_a_failed_write_or_read_counts_the_events_it_carried_at_its_stage(
        ports: dict[str, str], stage: str) -> None:
    memory = Memory()
    (port, operation), = ports.items()
    inner = memory.s3 if port == "s3" else memory.ddb
    result = memory.process([record(document(1), 80), record(document(2), 81)],
                            **{port: Failing(inner, operation)})
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": "80"}]}
    assert _stages(result) == {name: 2 if name == stage else 0 for name in STAGES}


def test_the_handlers_metrics_line_carries_the_stage_errors_on_moto(
        moto: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    ddb = client("dynamodb", moto.endpoint_url)
    metrics, lookups = f"stage-metrics-{id(capsys)}", f"stage-lookups-{id(capsys)}"
    ddb.create_table(**table_definition(metrics, "pk", "sk"))
    ddb.create_table(**table_definition(lookups, "pk"))
    workload = generate_workload(7, 4, users=2)
    for item in workload.lookups:
        ddb.put_item(TableName=lookups, Item=item)
    config = EventMetricsConfig(metrics_table_name=metrics, lookup_table_name=lookups,
                                enable_archival=False, max_workers=1)
    runtime = build_runtime(config.to_env(), dynamodb=ddb)
    capsys.readouterr()
    response = handle({"Records": [*workload.records, raw_record(b"{oops", 10**20)]}, runtime,
                      now_ms=int(time.time() * 1000))
    assert response == {"batchItemFailures": []}
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()
              if '"_aws"' in line]
    names = {m["Name"] for directive in emf["_aws"]["CloudWatchMetrics"]
             for m in directive["Metrics"]}
    assert {"ParseErrors", "ValidationErrors", "EnrichmentErrors", "AggregationErrors",
            "ArchiveErrors"} <= names
    assert emf["ParseErrors"] >= 1
    assert emf["AggregationErrors"] == emf["ArchiveErrors"] == 0
