"""``ArchiveCatalog``: the audit archive as a Glue table, queried in its own Athena workgroup.

The archive is gzip JSON Lines under ``{archive_prefix}year=YYYY/month=MM/day=DD/`` (see
``aggregator.archiver``). This construct describes it to Athena without a crawler and
without ``MSCK REPAIR TABLE``:

* a Glue database and an external table (L1 ``CfnDatabase``/``CfnTable``) over the
  archive prefix, read with the OpenX JSON SerDe, whose partitions are *projected*:
  Athena computes ``year``/``month``/``day`` and their S3 locations from the table's
  parameters, so a new day is queryable the moment its first object lands;
* an Athena workgroup that enforces its own settings (results location, SSE-S3
  encryption, engine version) and publishes CloudWatch metrics;
* a bucket of its own for query results (see :class:`ArchiveCatalog` for why not a
  prefix of the archive bucket).

Permissions only through :meth:`ArchiveCatalog.grant_query`. The column list is
:data:`ARCHIVE_COLUMNS`; ``docs/archive.md`` explains each type choice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .buckets import access_logs_bucket, secure_bucket
from .parts import S3_ACCESS_LOGS_USE_BUCKET_POLICY

JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
"""Renders a JSON object or array as its JSON text when the column is ``string``."""
TEXT_INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
"""Reads ``.gz`` objects through the gzip codec, chosen by the key's extension."""
TEXT_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
TABLE_NAME = "audit_events"
ENGINE_VERSION = "Athena engine version 3"


@dataclass(frozen=True)
class ArchiveColumn:
    """One column of the archive table: its Glue (Hive) type and what it holds."""

    name: str
    type: str
    comment: str


ARCHIVE_COLUMNS: tuple[ArchiveColumn, ...] = (
    ArchiveColumn("namespace", "string", "zae-limiter namespace id: the PK before '/'"),
    ArchiveColumn("event_id", "string", "the audit event's id; de-duplicate on it"),
    ArchiveColumn("entity_id", "string", "the entity the audited action changed"),
    ArchiveColumn("action", "string", "what was done, e.g. limits_set, entity_deleted"),
    ArchiveColumn("timestamp", "string",
                  "when the audited action happened, ISO-8601 UTC (YYYY-MM-DDTHH:MM:SSZ); "
                  "the partition's day"),
    ArchiveColumn("principal", "string", "who performed the audited action (an ARN), or null"),
    ArchiveColumn("resource", "string", "the resource a limit action concerned, or null"),
    ArchiveColumn("details", "string",
                  "the action's details: a JSON object in the file, read as its JSON text; "
                  "use json_extract_scalar(details, '$.key')"),
    ArchiveColumn("removal", "string",
                  "ttl: DynamoDB's TTL service removed the item; manual: anyone else did"),
    ArchiveColumn("removed_at", "string",
                  "when the item left the table (its stream record), ISO-8601 UTC, seconds"),
    ArchiveColumn("sequence_number", "string",
                  "the stream record's sequence number: decimal digits, up to 40"),
    ArchiveColumn("stream_event_id", "string", "the stream record's eventID"),
)
"""Every field of an archive line, in the order the archiver writes them."""

PARTITION_KEYS: tuple[ArchiveColumn, ...] = (
    ArchiveColumn("year", "int", "year of the audited action's timestamp (UTC)"),
    ArchiveColumn("month", "int", "month of the audited action's timestamp, 1-12"),
    ArchiveColumn("day", "int", "day of month of the audited action's timestamp, 1-31"),
)
"""The Hive partition folders ``year=YYYY/month=MM/day=DD``, projected (never stored)."""


@dataclass(frozen=True)
class ArchiveCatalogDefaults:
    """Every default of :class:`ArchiveCatalog`, in one place."""

    first_year: int = 2020
    """Oldest projected year: events dated earlier are in S3 but not in the table."""
    last_year: int = 2100
    """Newest projected year. A query without a year filter lists every projected day
    (12 x 31 prefixes a year), so filter on ``year`` (and ``month``/``day``)."""
    results_expiration: Duration = Duration.days(30)
    """Query results are deleted this long after a query wrote them."""
    noncurrent_version_expiration: Duration = Duration.days(1)
    """Overwritten or deleted result objects (and access logs) are kept this long."""
    access_logs_expiration: Duration = Duration.days(365)
    """Server access logs of the results bucket, when the catalog keeps its own."""


CATALOG_DEFAULTS = ArchiveCatalogDefaults()


def projection_parameters(
    location_root: str, *, first_year: int, last_year: int
) -> dict[str, str]:
    """The table parameters that make Athena compute the partitions (no crawler, no MSCK).

    ``location_root`` is ``s3://bucket/prefix`` (ending in ``/`` unless the prefix is
    empty). Each key is an integer range; ``digits`` pads it the way the archiver
    names the folders (``month=03``).
    """
    params = {"projection.enabled": "true"}
    for name, low, high, digits in (("year", first_year, last_year, 4), ("month", 1, 12, 2),
                                    ("day", 1, 31, 2)):
        params[f"projection.{name}.type"] = "integer"
        params[f"projection.{name}.range"] = f"{low},{high}"
        params[f"projection.{name}.digits"] = str(digits)
    params["storage.location.template"] = (
        location_root + "year=${year}/month=${month}/day=${day}/"
    )
    return params


class ArchiveCatalog(Construct):
    """A Glue table over the archive (partition projection) and an Athena workgroup.

    Query results go to a bucket of their own, not to a prefix of the archive bucket:
    results expire after days while the archive is kept for years (a lifecycle rule
    cannot be added to an archive bucket that was passed in); people who query get
    write access to the results bucket only, so the archive stays written by the
    aggregator alone; and results can never land under the table's location.

    Attributes:
        database: the Glue database (``CfnDatabase``).
        table: the Glue table (``CfnTable``), :data:`TABLE_NAME` in ``database``.
        workgroup: the Athena workgroup (``CfnWorkGroup``).
        results_bucket: where the workgroup writes query results.
        access_logs_bucket: the results bucket's access-log bucket when the catalog
            made its own (no ``server_access_logs_bucket`` given), else None.
        database_name, table_name, workgroup_name: the physical names.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        archive_bucket: s3.IBucket,
        archive_prefix: str,
        name_prefix: str,
        server_access_logs_bucket: s3.IBucket | None = None,
        first_year: int = CATALOG_DEFAULTS.first_year,
        last_year: int = CATALOG_DEFAULTS.last_year,
        results_expiration: Duration = CATALOG_DEFAULTS.results_expiration,
    ) -> None:
        """Args:
            archive_bucket: the bucket the aggregator archives to.
            archive_prefix: its ``AggregatorConfig.archive_prefix``: empty, or ending in
                ``/`` (the partitions must be folders).
            name_prefix: a plain string the names are made from: the database is
                ``{name_prefix}_archive`` (lowercase, ``[a-z0-9_]``), the workgroup
                ``{name_prefix}-archive``.
            server_access_logs_bucket: where the results bucket logs access. Default: a
                log bucket of the catalog's own.
            first_year, last_year: the projected years (see :class:`ArchiveCatalogDefaults`).
            results_expiration: how long query results are kept. Default 30 days.

        Raises:
            ValueError: the prefix is not a folder, the years are out of order, or the
                name prefix leaves no usable name.
        """
        super().__init__(scope, construct_id)
        self.node.set_context(S3_ACCESS_LOGS_USE_BUCKET_POLICY, True)
        if archive_prefix and not archive_prefix.endswith("/"):
            raise ValueError(
                f"archive_prefix {archive_prefix!r} must be empty or end with '/' for the "
                "archive catalog: Athena and Hive read the partitions as folders"
            )
        if not 1970 <= first_year <= last_year <= 9999:
            raise ValueError(
                f"first_year and last_year must satisfy 1970 <= first_year <= last_year "
                f"<= 9999, got {first_year} and {last_year}"
            )
        self.database_name = _database_name(name_prefix)
        self.table_name = TABLE_NAME
        self.workgroup_name = _workgroup_name(name_prefix)
        self._archive_bucket = archive_bucket
        self._archive_prefix = archive_prefix

        self.database = glue.CfnDatabase(
            self, "Database", catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description="Stream aggregator: the audit archive (see docs/archive.md)",
            ),
        )
        location = f"s3://{archive_bucket.bucket_name}/{archive_prefix}"
        self.table = glue.CfnTable(
            self, "Table", catalog_id=Aws.ACCOUNT_ID, database_name=self.database.ref,
            table_input=glue.CfnTable.TableInputProperty(
                name=TABLE_NAME,
                description="Audit records removed from the table, one JSON line each, "
                "partitioned by the audited action's own day",
                table_type="EXTERNAL_TABLE",
                parameters={
                    "EXTERNAL": "TRUE",
                    "classification": "json",
                    "compressionType": "gzip",
                    **projection_parameters(location, first_year=first_year,
                                            last_year=last_year),
                },
                partition_keys=[_column(c) for c in PARTITION_KEYS],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=[_column(c) for c in ARCHIVE_COLUMNS],
                    location=location,
                    input_format=TEXT_INPUT_FORMAT,
                    output_format=TEXT_OUTPUT_FORMAT,
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=JSON_SERDE,
                        # Keys as written: the column names are lowercase already, and
                        # the original OpenX SerDe would otherwise lowercase the keys
                        # inside `details` too.
                        parameters={"case.insensitive": "FALSE"},
                    ),
                ),
            ),
        )

        self.access_logs_bucket: s3.Bucket | None = None
        logs_bucket = server_access_logs_bucket or self._new_access_logs_bucket()
        self.results_bucket = secure_bucket(
            self, "ResultsBucket", props=None,
            access_logs=logs_bucket, access_logs_prefix="athena-results-bucket/",
            lifecycle_rules=[s3.LifecycleRule(
                id="expire-query-results",
                expiration=results_expiration,
                noncurrent_version_expiration=CATALOG_DEFAULTS.noncurrent_version_expiration,
                abort_incomplete_multipart_upload_after=Duration.days(1),
            )],
        )
        self.workgroup = athena.CfnWorkGroup(
            self, "WorkGroup", name=self.workgroup_name, state="ENABLED",
            description="Queries of the stream aggregator's audit archive",
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                requester_pays_enabled=False,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version=ENGINE_VERSION),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.results_bucket.bucket_name}/",
                    expected_bucket_owner=Aws.ACCOUNT_ID,
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"),
                ),
            ),
        )

    def grant_query(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``grantee`` to run queries on the archive table in the workgroup.

        Exactly: the query-execution actions on this workgroup; ``GetDatabase`` and
        ``GetTable`` on the catalog, this database and this table (projection needs no
        ``GetPartitions``); ``GetObject`` under the archive prefix and ``ListBucket``
        restricted to it; read and write of the results bucket. Nothing on the archive
        is writable.
        """
        stack = Stack.of(self)
        workgroup_arn = stack.format_arn(
            service="athena", resource="workgroup", resource_name=self.workgroup_name)
        glue_arns = [
            stack.format_arn(service="glue", resource="catalog"),
            stack.format_arn(service="glue", resource="database",
                             resource_name=self.database_name),
            stack.format_arn(service="glue", resource="table",
                             resource_name=f"{self.database_name}/{self.table_name}"),
        ]
        archive, results = self._archive_bucket, self.results_bucket
        prefix = f"{self._archive_prefix}*"
        statements: list[tuple[list[str], list[str], dict[str, dict[str, object]] | None]] = [
            (["athena:StartQueryExecution", "athena:StopQueryExecution",
              "athena:GetQueryExecution", "athena:GetQueryResults", "athena:GetWorkGroup"],
             [workgroup_arn], None),
            (["glue:GetDatabase", "glue:GetTable"], glue_arns, None),
            (["s3:GetObject"], [archive.arn_for_objects(prefix)], None),
            (["s3:ListBucket"], [archive.bucket_arn], {"StringLike": {"s3:prefix": [prefix]}}),
            (["s3:GetBucketLocation"], [archive.bucket_arn, results.bucket_arn], None),
            (["s3:ListBucket", "s3:ListBucketMultipartUploads"], [results.bucket_arn], None),
            (["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload",
              "s3:ListMultipartUploadParts"], [results.arn_for_objects("*")], None),
        ]
        grants = [
            iam.Grant.add_to_principal(grantee=grantee, actions=actions,
                                       resource_arns=resources, conditions=conditions)
            for actions, resources, conditions in statements
        ]
        grant = grants[0]
        for other in grants[1:]:
            grant = grant.combine(other)
        if archive.encryption_key is not None:
            archive.encryption_key.grant_decrypt(grantee)
        return grant

    def _new_access_logs_bucket(self) -> s3.Bucket:
        self.access_logs_bucket = access_logs_bucket(
            self, whose="the query results bucket's",
            expiration=CATALOG_DEFAULTS.access_logs_expiration,
            noncurrent_version_expiration=CATALOG_DEFAULTS.noncurrent_version_expiration)
        return self.access_logs_bucket


def _column(column: ArchiveColumn) -> glue.CfnTable.ColumnProperty:
    return glue.CfnTable.ColumnProperty(
        name=column.name, type=column.type, comment=column.comment)


def _database_name(name_prefix: str) -> str:
    """Athena reads databases named with lowercase letters, digits and ``_`` only."""
    base = re.sub(r"[^a-z0-9]+", "_", name_prefix.lower()).strip("_")
    if not base:
        raise ValueError(f"name_prefix {name_prefix!r} leaves no letters or digits for a "
                         "database name")
    return f"{base[:246]}_archive"


def _workgroup_name(name_prefix: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", name_prefix).strip("-")
    if not base:
        raise ValueError(f"name_prefix {name_prefix!r} leaves no usable workgroup name")
    return f"{base[:120]}-archive"
