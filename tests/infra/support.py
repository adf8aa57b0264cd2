"""What the infra tests share besides fixtures: names, the variant stacks, a consumer app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from aggregator.config import AggregatorConfig
from infra import StreamAggregator
from infra.alarms import AlarmThresholds

REPO = Path(__file__).resolve().parents[2]
ENV_NAME = "test"
"""The app's ``env_name`` in the shared synth: its stacks are ``<System>-test``."""
STACK_NAME = f"StreamAggregator-{ENV_NAME}"
"""The usage aggregator's stack in the shared synth of the app."""
EXISTING_BUCKET = "existing-archive-bucket"
EXISTING_TOPIC = "arn:aws:sns:eu-west-1:123456789012:existing-alarms"
CONSUMER_STACK = "Consumer"

VARIANTS = ("Overridden", "ExistingResources", "NoArchive", "SnapshotTable")
"""The stacks of :func:`variants_assembly`."""
OVERRIDDEN_THRESHOLDS = AlarmThresholds(
    error_rate_percent=5, error_rate_warning_percent=2, duration_percent_of_timeout=50,
    duration_warning_percent_of_timeout=25,
    iterator_age=Duration.minutes(5), iterator_age_warning=Duration.seconds(60),
    dlq_depth=10, throttles=3, skipped_records=2, failed_writes=4,
)
CUSTOM_FILTER = lambda_.FilterCriteria.filter({"eventName": ["INSERT"]})


def synth_with_nag(outdir: Path, build: Callable[[App], object], *,
                   context: Mapping[str, Any] | None = None) -> Path:
    """``build`` an app into ``outdir`` and synthesize it with cdk-nag's AwsSolutions pack,
    as ``app.py`` does: synth raises if a finding is not acknowledged."""
    app = App(outdir=str(outdir), context=dict(context) if context else None)
    build(app)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return outdir


def cdk_json_context(**overrides: Any) -> dict[str, Any]:
    """The context ``cdk synth`` sees (cdk.json), with ``overrides`` on top."""
    context: dict[str, Any] = json.loads((REPO / "cdk.json").read_text())["context"]
    return {**context, **overrides}


def synth_app(outdir: Path) -> Path:
    """``app.py`` synthesized into ``outdir`` the way ``cdk synth`` runs it: its own process,
    the cdk.json context (``env_name`` :data:`ENV_NAME`) in ``CDK_CONTEXT_JSON``, cdk-nag on,
    so the four stacks are exactly what a deploy gets; a cdk-nag finding fails it."""
    env = {**os.environ, "CDK_OUTDIR": str(outdir),
           "CDK_CONTEXT_JSON": json.dumps(cdk_json_context(env_name=ENV_NAME))}
    result = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return outdir


CheckovReport = dict[str, Any]
"""checkov's JSON report for one template: ``results`` (``passed_checks``,
``failed_checks``, ``skipped_checks``) and ``summary`` (counts, ``parsing_errors``)."""


def checkov(templates: Iterable[Path]) -> dict[str, CheckovReport]:
    """One checkov run (its CLI, offline) over ``templates`` (one folder), split into one
    report per template, keyed by the template's stack name: a run costs seconds to start,
    so every template of an assembly shares one."""
    paths = sorted(templates)
    (folder,) = {path.parent for path in paths}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("checkov")), "--framework", "cloudformation",
         "-o", "json", "--skip-download", "-f", *(path.name for path in paths)],
        capture_output=True, text=True, check=False, cwd=folder,
    )
    assert result.returncode in {0, 1}, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert isinstance(report, dict), report
    unparsed = {Path(p).name for p in report["results"].get("parsing_errors", [])}
    split: dict[str, CheckovReport] = {}
    for path in paths:
        results = {kind: [c for c in report["results"][kind]
                          if Path(c["file_path"]).name == path.name]
                   for kind in ("passed_checks", "failed_checks", "skipped_checks")}
        split[path.name.removesuffix(".template.json")] = {"results": results, "summary": {
            "passed": len(results["passed_checks"]), "failed": len(results["failed_checks"]),
            "skipped": len(results["skipped_checks"]),
            "parsing_errors": int(path.name in unparsed)}}
    return split


def stack_template(assembly: Path, stack: str) -> Template:
    """One stack's synthesized template, for ``aws_cdk.assertions``."""
    return Template.from_json(json.loads((assembly / f"{stack}.template.json").read_text()))


def source_table(stack: Stack, name: str = "Table") -> dynamodb.Table:
    return dynamodb.Table(
        stack,
        name,
        partition_key=dynamodb.Attribute(name="PK", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="SK", type=dynamodb.AttributeType.STRING),
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        removal_policy=RemovalPolicy.RETAIN,
    )


def build_variants(app: App) -> None:
    overridden = Stack(app, "Overridden")
    StreamAggregator(
        overridden, "Aggregator", table=source_table(overridden), config=AggregatorConfig(),
        archive_bucket_props=s3.BucketProps(versioned=False),
        batch_size=500, max_batching_window=Duration.seconds(5),
        starting_position=lambda_.StartingPosition.LATEST, retry_attempts=3,
        max_record_age=Duration.hours(1), parallelization_factor=4, filters=[],
        memory_size=1024, timeout=Duration.seconds(120),
        architecture=lambda_.Architecture.X86_64, reserved_concurrency=5,
        log_retention=logs.RetentionDays.ONE_WEEK, alarm_thresholds=OVERRIDDEN_THRESHOLDS,
        alarm_emails=["ops@example.com", "oncall@example.com"],
        alarm_name_prefix="usage", dashboard_name="usage-dashboard",
    )
    existing = Stack(app, "ExistingResources")
    StreamAggregator(
        existing, "Aggregator", table=source_table(existing),
        config=AggregatorConfig(archive_prefix="logs/"),
        archive_bucket=s3.Bucket.from_bucket_name(existing, "Archive", EXISTING_BUCKET),
        alarm_topic=sns.Topic.from_topic_arn(existing, "Alarms", EXISTING_TOPIC),
        filters=[CUSTOM_FILTER],
    )
    no_archive = Stack(app, "NoArchive")
    StreamAggregator(
        no_archive, "Aggregator", table=source_table(no_archive),
        snapshot_table=source_table(no_archive, "Snapshots"),
        config=AggregatorConfig(enable_archival=False, enable_refill=False),
    )
    snapshots = Stack(app, "SnapshotTable")
    StreamAggregator(
        snapshots, "Aggregator", table=source_table(snapshots),
        snapshot_table=source_table(snapshots, "Snapshots"), config=AggregatorConfig(),
    )


@dataclass(frozen=True)
class Variants:
    overridden: Template
    existing: Template
    no_archive: Template
    snapshot_table: Template


CONSUMER_APP = textwrap.dedent('''
    """A consumer's own app: its own infra/ and aggregator/ packages, its pre-existing
    table, the installed constructs imported as the README shows, cdk-nag."""
    import sys
    from pathlib import Path

    import aggregator
    import infra
    from aws_cdk import App, Stack, Validations
    from aws_cdk import aws_dynamodb as dynamodb
    from cdk_nag import AwsSolutionsChecks
    from cdk_stream_aggregator import AggregatorConfig, StreamAggregator

    import cdk_stream_aggregator

    site = Path(sys.argv[1]).resolve()
    here = Path.cwd().resolve()
    assert Path(cdk_stream_aggregator.__file__).resolve().is_relative_to(site)
    for own in (aggregator, infra):
        where = Path(own.__file__).resolve()
        assert where.is_relative_to(here), f"{own.__name__} imported from {where}"
    assert infra.OWNER == aggregator.OWNER == "consumer"
    assert AggregatorConfig().table_name == "rate-limits"
    # the library's usage pipeline, under the name that cannot shadow the app's own
    assert AggregatorConfig.__module__ == "streamagg_usage.config"
    assert sys.modules["aggregator"] is aggregator

    app = App(outdir="cdk.out")
    stack = Stack(app, "Consumer")
    table = dynamodb.Table.from_table_attributes(
        stack, "Limits", table_name="rate-limits",
        table_stream_arn="arn:aws:dynamodb:eu-west-1:123456789012:table/rate-limits"
        "/stream/2025-01-01T00:00:00.000",
    )
    StreamAggregator(stack, "Usage", table=table)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
''')
"""Run with the wheel's install folder as ``sys.argv[1]`` and on ``PYTHONPATH``, from a
directory that holds the consumer's own ``infra/`` and ``aggregator/`` packages."""


def dashboard_body(template: Template) -> dict[str, Any]:
    """The dashboard's JSON, with every CloudFormation token replaced by ``"<token>"``."""
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(p if isinstance(p, str) else "<token>" for p in parts)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def dashboard_alarms(template: Template) -> list[str]:
    """The names of the alarms in the dashboard's alarm-status widget, in order."""
    (status,) = [w for w in dashboard_body(template)["widgets"] if w["type"] == "alarm"]
    return [arn.rsplit(":", 1)[-1] for arn in status["properties"]["alarms"]]


def dashboard_thresholds(template: Template) -> set[tuple[str, float]]:
    """Every threshold line drawn on the dashboard's graphs, as (label, value)."""
    return {
        (a["label"], a["value"])
        for w in dashboard_body(template)["widgets"] if w["type"] == "metric"
        for a in w["properties"].get("annotations", {}).get("horizontal", [])
    }
