"""The real handler against moto's server: tables, buckets and a local stream mapping."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from aggregator.config import AggregatorConfig
from aggregator.handler import Runtime, build_runtime, handle
from local_aws.event_source_mapping import LocalEventSourceMapping, MappingReport, MappingSettings
from local_aws.server import MotoServer, client

_names = itertools.count(1)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@dataclass
class LocalAws:
    endpoint_url: str
    ddb: Any
    streams: Any
    s3: Any
    sqs: Any
    dlq_messages: list[dict[str, Any]] = field(default_factory=list)

    def create_table(self, prefix: str = "usage") -> tuple[str, str]:
        """A table shaped like zae-limiter's (PK/SK, GSI2, TTL, stream); (name, stream ARN)."""
        name = f"{prefix}-{next(_names)}"
        self.ddb.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                       {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                                  for a in ("PK", "SK", "GSI2PK", "GSI2SK")],
            GlobalSecondaryIndexes=[{
                "IndexName": "GSI2", "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [{"AttributeName": "GSI2PK", "KeyType": "HASH"},
                              {"AttributeName": "GSI2SK", "KeyType": "RANGE"}]}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        stream = self.ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
        return name, stream

    def create_zae_table(self) -> tuple[str, str]:
        """A table exactly as zae-limiter creates its own; (name, stream ARN)."""
        from zae_limiter import schema  # noqa: PLC0415 - a test-only dependency

        name = f"zae-{next(_names)}"
        self.ddb.create_table(**schema.get_table_definition(name))
        self.ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
        stream = self.ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
        return name, stream

    def create_bucket(self) -> str:
        name = f"archive-{next(_names)}"
        self.s3.create_bucket(Bucket=name)
        return name

    def runtime(self, config: AggregatorConfig) -> Runtime:
        return build_runtime(config.to_env(), dynamodb=self.ddb, s3=self.s3)

    def mapping(self, stream_arn: str, runtime: Runtime, *, batch_size: int = 100,
                ttl_keys: Any = lambda keys: False) -> LocalEventSourceMapping:
        def invoke(event: dict[str, Any]) -> Mapping[str, Any]:
            return handle(event, runtime, now_ms=int(time.time() * 1000))

        return LocalEventSourceMapping(
            self.streams, stream_arn, invoke,
            settings=MappingSettings(batch_size=batch_size, retry_attempts=3),
            on_failure=self.dlq_messages.append, clock=time.time, ttl_deleted_keys=ttl_keys,
        )

    def drain(self, stream_arn: str, config: AggregatorConfig, **kwargs: Any) -> MappingReport:
        return self.mapping(stream_arn, self.runtime(config), **kwargs).drain()

    def items(self, table: str) -> list[dict[str, Any]]:
        pages = self.ddb.get_paginator("scan").paginate(TableName=table)
        return [item for page in pages for item in page["Items"]]

    def objects(self, bucket: str) -> dict[str, bytes]:
        listing = self.s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"]: self.s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                for o in listing}


@pytest.fixture
def aws(moto: MotoServer) -> LocalAws:
    url = moto.endpoint_url
    return LocalAws(url, client("dynamodb", url), client("dynamodbstreams", url),
                    client("s3", url), client("sqs", url))

