"""The harness every port of zae-limiter 0.17's aggregator tests shares.

Upstream tests call the aggregator's internals (``extract_deltas``, ``update_snapshot``,
``try_refill_bucket``) with a mocked table. A port instead builds the same stream record,
hands it to OUR Lambda entry point (``aggregator.handler.handler``) on a zae-limiter
table in moto's server, and reads the result back the way a zae-limiter user does, with
zae-limiter's own reader (``SyncRepository``). So a port checks what a user would see.

API (stable: other port files import it):

* fixtures ``zae_moto`` (one moto server per module), ``zae_table`` (one zae-limiter table
  per module) and ``zae`` (that table, emptied for each test), which a test module takes
  in as ``zae_moto, zae_table, zae = support.zae_moto, support.zae_table, support.zae``;
* :func:`logged`: the handler's JSON log lines with a given message;
* :func:`bucket_image` / :func:`legacy_bucket_image`: a bucket item as zae-limiter 0.17
  (or a pre-0.9 client) writes it; :func:`stream_record`: a Lambda-shaped record of it;
* :class:`Zae`: ``put_bucket``, ``invoke_handler(records, now_ms=...)``, ``reader()``,
  ``snapshots(...)``, ``item(pk, sk)`` and ``items()``.
"""

from __future__ import annotations

import itertools
import json
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from aggregator.config import AggregatorConfig
from aggregator.handler import PIPELINE
from local_aws.server import MotoServer, client
from local_aws.stream_records import lambda_record
from streamagg_engine import bootstrap
from streamagg_engine.windows import Window
from tests.moto_fixtures import LocalAws

REGION = "us-east-1"
RF_MS = 1_704_067_200_000
"""2024-01-01T00:00:00Z: upstream's tests stamp their records with it."""
RESERVED_PREFIX = "_/"
"""zae-limiter's reserved namespace: its version and namespace registry items."""
_tables = itertools.count(1)
_sequence = itertools.count(2_000_000_000_000_000_000)


def n(value: int | str) -> dict[str, str]:
    return {"N": str(value)}


def s(value: str) -> dict[str, str]:
    return {"S": value}


@dataclass(frozen=True)
class LimitState:
    """One limit of a bucket item, in millitokens as zae-limiter stores it."""

    tc: int = 0
    """Cumulative consumption counter (``b_{name}_tc``)."""
    tk: int | None = None
    """Balance (``b_{name}_tk``); None: the capacity minus ``tc``."""
    cp: int = 1_000_000
    ra: int = 1_000_000
    rp: int = 60_000
    soft: bool = False
    """A soft limit: ``b_{name}_soft`` carries a stamp (metered, never enforced)."""


def _limit_attributes(limits: Mapping[str, LimitState | int]) -> dict[str, Any]:
    image: dict[str, Any] = {}
    for name, given in limits.items():
        limit = given if isinstance(given, LimitState) else LimitState(tc=given)
        image[f"b_{name}_tc"] = n(limit.tc)
        image[f"b_{name}_tk"] = n(limit.cp - limit.tc if limit.tk is None else limit.tk)
        image[f"b_{name}_cp"] = n(limit.cp)
        image[f"b_{name}_ra"] = n(limit.ra)
        image[f"b_{name}_rp"] = n(limit.rp)
        if limit.soft:
            image[f"b_{name}_soft"] = n(RF_MS + 3_600_000)
    return image


def bucket_image(namespace_id: str, entity: str, resource: str,
                 limits: Mapping[str, LimitState | int], *, shard: int = 0,
                 shard_count: int = 1, rf: int = RF_MS, resource_attribute: bool = True,
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A 0.9+ bucket item (``{ns}/BUCKET#{entity}#{resource}#{shard}``, ``#STATE``).

    ``limits``: name → :class:`LimitState`, or just the ``tc`` counter.
    """
    image: dict[str, Any] = {
        "PK": s(f"{namespace_id}/BUCKET#{entity}#{resource}#{shard}"), "SK": s("#STATE"),
        "entity_id": s(entity), "rf": n(rf), "shard_count": n(shard_count),
    }
    if resource_attribute:
        image["resource"] = s(resource)
    image.update(_limit_attributes(limits))
    image.update(extra or {})
    return image


def legacy_bucket_image(namespace_id: str, entity: str, resource: str,
                        limits: Mapping[str, LimitState | int], *, rf: int = RF_MS,
                        extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A pre-0.9 bucket item (``{ns}/ENTITY#{entity}``, ``#BUCKET#{resource}``)."""
    image: dict[str, Any] = {
        "PK": s(f"{namespace_id}/ENTITY#{entity}"), "SK": s(f"#BUCKET#{resource}"),
        "entity_id": s(entity), "resource": s(resource), "rf": n(rf),
    }
    image.update(_limit_attributes(limits))
    image.update(extra or {})
    return image


def stream_record(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None,
                  event_name: str = "MODIFY", *, created_ms: int = RF_MS,
                  sequence: str | None = None) -> dict[str, Any]:
    """A Lambda DynamoDB Streams record (NEW_AND_OLD_IMAGES) of one item's change.

    Sequence numbers grow with every call, so records made in order are in stream order.
    """
    image = new if new is not None else old
    if image is None:
        raise ValueError("a record needs an old or a new image")
    keys = {"PK": image["PK"], "SK": image["SK"]}
    return lambda_record(event_name, keys=keys, sequence=sequence or str(next(_sequence)),
                         created=created_ms / 1000,
                         old=dict(old) if old is not None else None,
                         new=dict(new) if new is not None else None)


@pytest.fixture(scope="module")
def zae_moto() -> Iterator[MotoServer]:
    """One moto server per module, so each port file stays fast and independent."""
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """The same for a module whose ports need S3 beside DynamoDB (the archive's)."""
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def aws(moto: MotoServer) -> LocalAws:
    url = moto.endpoint_url
    return LocalAws(url, client("dynamodb", url), client("dynamodbstreams", url),
                    client("s3", url), client("sqs", url))


@dataclass
class Zae:
    """A zae-limiter 0.17 table on moto, our handler in front of it, its reader behind."""

    endpoint_url: str
    ddb: Any
    table: str
    namespace_id: str
    config: AggregatorConfig
    responses: list[dict[str, Any]] = field(default_factory=list)
    _reader: Any = None

    @property
    def ns(self) -> str:
        return self.namespace_id

    def put_bucket(self, entity: str, resource: str, limits: Mapping[str, LimitState | int],
                   **image: Any) -> dict[str, Any]:
        """Write a bucket item (see :func:`bucket_image`) to the table; its image."""
        item = bucket_image(self.namespace_id, entity, resource, limits, **image)
        self.ddb.put_item(TableName=self.table, Item=item)
        return item

    def invoke_handler(self, records: Sequence[Mapping[str, Any]], *, now_ms: int | None = None,
                       **config: Any) -> dict[str, Any]:
        """Our Lambda entry point on one batch; Lambda's partial batch response.

        A new container per call (its configuration from ``self.config`` and ``config``),
        as the entry point builds it: settings from the environment, clients to moto.
        ``now_ms`` pins the clock refills read; None: the entry point's own clock.
        """
        settings = replace(self.config, **config)
        entry = bootstrap.LambdaEntry(PIPELINE)
        entry.runtime = PIPELINE.build_runtime(settings.to_env(), dynamodb=self.ddb)
        event = {"Records": [dict(r) for r in records]}
        if now_ms is None:
            response = entry(event, None)
        else:
            response = PIPELINE.handle(event, entry.runtime, now_ms=now_ms)
        self.responses.append(response)
        return response

    def reader(self) -> Any:
        """zae-limiter's own ``SyncRepository`` on this table (namespace ``default``)."""
        if self._reader is None:
            self._reader = _repository(self.endpoint_url, self.table)
        return self._reader

    def snapshots(self, entity: str, resource: str | None = None,
                  window: str | None = None) -> list[Any]:
        """The reader's ``UsageSnapshot``s of ``entity``, oldest first."""
        found, _ = self.reader().get_usage_snapshots(
            entity_id=entity, resource=resource, window_type=window, limit=1000)
        return sorted(found, key=lambda snap: (snap.window_start, snap.window_type))

    def item(self, pk: str, sk: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.ddb.get_item(
            TableName=self.table, Key={"PK": s(pk), "SK": s(sk)}, ConsistentRead=True,
        ).get("Item")
        return found

    def items(self) -> list[dict[str, Any]]:
        pages = self.ddb.get_paginator("scan").paginate(TableName=self.table)
        return [item for page in pages for item in page["Items"]]

    def usage_items(self) -> list[dict[str, Any]]:
        """The snapshot items, as stored (DynamoDB JSON)."""
        return [item for item in self.items() if item["SK"]["S"].startswith("#USAGE#")]


def _repository(endpoint_url: str, table: str) -> Any:
    from zae_limiter import SyncRepository  # noqa: PLC0415 - a test-only dependency

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return (SyncRepository.builder().stack(table).region(REGION)
                .endpoint_url(endpoint_url).namespace("default").build())


@pytest.fixture(scope="module")
def zae_table(zae_moto: MotoServer) -> Zae:
    """A zae-limiter table (as zae-limiter creates it) with namespace ``default``, per module:
    building one and its reader takes about two seconds."""
    from zae_limiter import schema  # noqa: PLC0415 - a test-only dependency

    url = zae_moto.endpoint_url
    ddb = client("dynamodb", url)
    name = f"zae-up-{next(_tables)}-{int(time.time())}"
    ddb.create_table(**schema.get_table_definition(name))
    repository = _repository(url, name)
    config = AggregatorConfig(table_name=name, enable_archival=False, enable_refill=False,
                              snapshot_windows=(Window.HOURLY, Window.DAILY))
    return Zae(url, ddb, name, repository.namespace_id, config, _reader=repository)


@pytest.fixture
def zae(zae_table: Zae) -> Zae:
    """The module's table, emptied of everything but zae-limiter's own registry items
    (reserved namespace ``_``), so each test starts from a clean table."""
    for item in zae_table.items():
        if not item["PK"]["S"].startswith(RESERVED_PREFIX):
            zae_table.ddb.delete_item(TableName=zae_table.table,
                                      Key={"PK": item["PK"], "SK": item["SK"]})
    zae_table.responses.clear()
    return zae_table


def logged(capsys: pytest.CaptureFixture[str], message: str | None) -> list[dict[str, Any]]:
    """The JSON log lines with ``message`` the handler wrote since the last call (it logs
    to stdout); None: every line, the EMF documents included."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    return [line for line in lines if message is None or line.get("message") == message]
