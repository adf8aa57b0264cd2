"""zae-limiter 0.17.0's ``tests/unit/test_handler.py``, ported to our Lambda entry point.

Upstream patches ``process_stream_records`` and ``archive_audit_events`` with mocks and
checks that its handler calls them and adds up their results. Here nothing is mocked:
``aggregator.handler.handler`` is invoked as Lambda invokes it (settings from the
environment, clients built by the entry point, pointed at moto's server), and each test
asserts what a user sees: the snapshots zae-limiter's own reader returns, the archive
objects in S3, the partial batch response and the batch's completion line.

Counts: 5 upstream tests; 5 ported, 5 passing, all 5 asserting one deviation on purpose:
upstream returns ``{"statusCode": 200, "body": {processed, snapshots_updated,
refills_written, events_archived, errors}}``; ours returns Lambda's partial batch
response (``{"batchItemFailures": [...]}``, the mapping's ``ReportBatchItemFailures``
contract), so a failed write is retried from its record instead of being reported in a
body nobody reads. The same counts are in the ``batch completed`` log line and the EMF
metrics (README "Alarms and dashboard"); upstream's ``errors`` list is our failed records plus the
``skipped_malformed`` count. The bucket records use zae-limiter 0.17's key layout
(``{ns}/BUCKET#{entity}#{resource}#{shard}``, ``#STATE``); upstream's fixture still has
the pre-0.9 layout, which its mocked processor never reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from aggregator import handler as handler_module
from aggregator.config import AggregatorConfig
from local_aws.server import FAKE_REGION
from local_aws.stream_records import lambda_record
from local_aws.traffic import zae_limiter
from streamagg_engine.windows import Window
from tests.factories import next_sequence
from tests.moto_fixtures import LocalAws
from tests.zae_upstream import support

CREATED = 1_705_329_000.0
"""2024-01-15T14:30:00Z: when the stream saw upstream's records."""


moto, aws = support.moto, support.aws


@pytest.fixture(scope="module")
def zae(aws: LocalAws) -> tuple[str, Any]:
    """A table as zae-limiter creates it, and zae-limiter's client on it."""
    table, _ = aws.create_zae_table()
    return table, zae_limiter(aws.endpoint_url, table, FAKE_REGION)


@dataclass(frozen=True)
class Context:
    """What the handler reads of Lambda's context object."""

    aws_request_id: str = "test-request-123"
    function_name: str = "test-aggregator-function"


@dataclass
class Invoked:
    response: dict[str, Any]
    completed: dict[str, Any]


Invoke = Callable[..., Invoked]


@pytest.fixture
def invoke(aws: LocalAws, zae: tuple[str, Any], monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> Invoke:
    """``handler(event, context)`` in a fresh container whose environment holds the
    settings (``enable_archival``, ``archive_bucket_name``, ...) given."""
    table, _ = zae

    def run(records: list[dict[str, Any]], **settings: Any) -> Invoked:
        config = AggregatorConfig(table_name=table, enable_refill=False,
                                  snapshot_windows=(Window.HOURLY, Window.DAILY), **settings)
        for name, value in {**config.to_env(), "AWS_ENDPOINT_URL": aws.endpoint_url}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(handler_module.handler, "runtime", None)
        capsys.readouterr()
        response = handler_module.handler({"Records": records}, Context())
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                 if line.startswith("{")]
        (completed,) = [line for line in lines if line.get("message") == "batch completed"]
        return Invoked(response, completed)
    return run


def bucket_record(ns: str, entity_id: str = "user-1", resource: str = "gpt-4",
                  limit_name: str = "tpm", old_counter: int = 0,
                  new_counter: int = 1_000_000) -> dict[str, Any]:
    """Upstream's ``_make_bucket_record``: a MODIFY of a bucket's flat attributes."""
    def image(counter: int, tokens: int) -> dict[str, Any]:
        return {
            "PK": {"S": f"{ns}/BUCKET#{entity_id}#{resource}#0"},
            "SK": {"S": "#STATE"},
            "entity_id": {"S": entity_id},
            "resource": {"S": resource},
            "rf": {"N": "1705329000000"},
            f"b_{limit_name}_tc": {"N": str(counter)},
            f"b_{limit_name}_tk": {"N": str(tokens)},
            f"b_{limit_name}_cp": {"N": "10000000"},
            f"b_{limit_name}_ra": {"N": "10000000"},
            f"b_{limit_name}_rp": {"N": "60000"},
        }
    old, new = image(old_counter, 10_000_000), image(new_counter, 9_000_000)
    return lambda_record("MODIFY", keys={"PK": new["PK"], "SK": new["SK"]},
                         sequence=next_sequence(), created=CREATED, old=old, new=new)


def audit_record(ns: str, entity_id: str = "user-1", event_id: str = "01HPQRS",
                 action: str = "entity_created",
                 timestamp: str = "2024-01-15T14:30:00Z") -> dict[str, Any]:
    """Upstream's ``_make_audit_record``: the REMOVE of an audit item."""
    old = {
        "PK": {"S": f"{ns}/AUDIT#{entity_id}"},
        "SK": {"S": f"#AUDIT#{event_id}"},
        "entity_id": {"S": entity_id},
        "event_id": {"S": event_id},
        "action": {"S": action},
        "timestamp": {"S": timestamp},
        "principal": {"S": "arn:aws:iam::123456789012:user/test"},
        "details": {"M": {}},
    }
    return lambda_record("REMOVE", keys={"PK": old["PK"], "SK": old["SK"]},
                         sequence=next_sequence(), created=CREATED, old=old)


def hourly_tpm(limiter: Any, entity: str) -> list[int]:
    """What zae-limiter's reader shows of ``entity``'s hourly ``tpm`` usage."""
    snapshots, _ = limiter.get_usage_snapshots(entity_id=entity, resource="gpt-4",
                                               window_type="hourly", limit=100)
    return [snapshot.counters.get("tpm", 0) for snapshot in snapshots]


class TestHandler:
    def test_handler_processes_records(self, invoke: Invoke, zae: tuple[str, Any]) -> None:
        """Upstream: unit/test_handler.py::TestHandler::test_handler_processes_records.

        Deviation: partial batch response, counts in the completion line (module doc).
        """
        _, limiter = zae
        ns = limiter._repository.namespace_id
        run = invoke([bucket_record(ns, entity_id="processes")], enable_archival=False)
        assert run.response == {"batchItemFailures": []}
        done = run.completed
        assert (done["records"], done["snapshot_writes"], done["refills_written"],
                done["archived_records"], done["skipped_malformed"]) == (1, 2, 0, 0, 0)
        assert hourly_tpm(limiter, "processes") == [1000]

    def test_handler_with_archival_enabled(self, invoke: Invoke, zae: tuple[str, Any],
                                           aws: LocalAws) -> None:
        """Upstream: unit/test_handler.py::TestHandler::test_handler_with_archival_enabled.

        Deviation: partial batch response, counts in the completion line (module doc).
        """
        _, limiter = zae
        ns = limiter._repository.namespace_id
        bucket = aws.create_bucket()
        run = invoke([bucket_record(ns, entity_id="archival"), audit_record(ns)],
                     archive_bucket_name=bucket)
        assert run.response == {"batchItemFailures": []}
        done = run.completed
        assert (done["records"], done["snapshot_writes"], done["archived_records"],
                done["archive_objects"]) == (2, 2, 1, 1)
        assert hourly_tpm(limiter, "archival") == [1000]
        (key,) = aws.objects(bucket)
        assert key.startswith("audit/year=2024/month=01/day=15/")

    def test_handler_aggregates_errors(self, invoke: Invoke, zae: tuple[str, Any]) -> None:
        """Upstream: unit/test_handler.py::TestHandler::test_handler_aggregates_errors.

        Deviation: upstream returns both processors' error messages in its body and
        Lambda moves on; ours fails the records the failed writes carried (both the
        snapshot writes and the archive put here), reports the first of them so Lambda
        retries from it, and logs one error line per failed write.
        """
        _, limiter = zae
        ns = limiter._repository.namespace_id
        bucket_change, removal = bucket_record(ns, entity_id="errors"), audit_record(ns)
        run = invoke([bucket_change, removal], snapshot_table_name="no-such-table",
                     archive_bucket_name="no-such-bucket")
        first = bucket_change["dynamodb"]["SequenceNumber"]
        assert run.response == {"batchItemFailures": [{"itemIdentifier": first}]}
        assert (run.completed["failed_writes"], run.completed["snapshot_writes"],
                run.completed["archived_records"]) == (3, 0, 0)

    def test_handler_skips_archival_when_disabled(self, invoke: Invoke, zae: tuple[str, Any],
                                                  aws: LocalAws) -> None:
        """Upstream: unit/test_handler.py::TestHandler::test_handler_skips_archival_when_disabled.

        Deviation: partial batch response, counts in the completion line (module doc).
        """
        _, limiter = zae
        ns = limiter._repository.namespace_id
        bucket = aws.create_bucket()
        run = invoke([bucket_record(ns, entity_id="disabled"), audit_record(ns)],
                     enable_archival=False, archive_bucket_name=bucket)
        assert handler_module.handler.runtime is not None
        assert handler_module.handler.runtime.stores.archive is None
        assert (run.completed["archived_records"], run.completed["ignored"]) == (0, 1)
        assert aws.objects(bucket) == {}

    def test_handler_skips_archival_when_no_bucket(self, invoke: Invoke,
                                                   zae: tuple[str, Any]) -> None:
        """Upstream: unit/test_handler.py::TestHandler::test_handler_skips_archival_when_no_bucket.

        Deviation: partial batch response, counts in the completion line (module doc).
        """
        _, limiter = zae
        ns = limiter._repository.namespace_id
        run = invoke([bucket_record(ns, entity_id="no-bucket"), audit_record(ns)],
                     enable_archival=True, archive_bucket_name="")
        runtime = handler_module.handler.runtime
        assert runtime is not None
        assert runtime.stores.archive is None
        assert (run.completed["archived_records"], run.completed["ignored"]) == (0, 1)
        assert run.response == {"batchItemFailures": []}
        assert hourly_tpm(limiter, "no-bucket") == [1000]
