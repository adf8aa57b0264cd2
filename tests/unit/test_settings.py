"""The one settings parser: a field's type decides how its variable parses, every error
names the setting and its variable, and every pipeline's settings survive the round trip
through the environment that the construct writes and the Lambda reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.config import AggregatorConfig
from streamagg_bundles.config import BundlerConfig
from streamagg_engine.errors import ConfigError
from streamagg_engine.settings import CHOICES, EnvSettings
from streamagg_engine.windows import Window
from streamagg_events.config import EventMetricsConfig
from streamagg_projection.config import ProjectionConfig


@dataclass(frozen=True)
class Knobs(EnvSettings, env_prefix="KNOBS_"):
    """A pipeline's settings as a new one would declare them: no parser to extend."""

    bucket: str
    dry_run: bool = True
    retries: int = 3
    backoff_seconds: float = 0.5
    labels: tuple[str, ...] = ("a",)
    windows: tuple[Window, ...] = field(default=(Window.HOURLY,),
                                        metadata={CHOICES: (Window.HOURLY, Window.DAILY)})


@pytest.mark.parametrize(("text", "value"), [
    ("false", False), ("FALSE", False), ("0", False), ("no", False), ("off", False),
    (" Off ", False), ("", False), ("true", True), ("1", True), ("yes", True), ("ON", True),
])
def test_a_new_bool_field_reads_its_variable_as_a_bool(text: str, value: bool) -> None:
    assert Knobs.from_env({"KNOBS_BUCKET": "b", "KNOBS_DRY_RUN": text}).dry_run is value


def test_each_field_parses_by_its_declared_type() -> None:
    knobs = Knobs.from_env({"KNOBS_BUCKET": " b ", "KNOBS_RETRIES": " 7", "KNOBS_LABELS": "x, y,,z",
                            "KNOBS_BACKOFF_SECONDS": "0.25", "KNOBS_WINDOWS": "Daily,hourly"})
    assert knobs == Knobs(bucket=" b ", retries=7, backoff_seconds=0.25, labels=("x", "y", "z"),
                          windows=(Window.DAILY, Window.HOURLY))
    assert Knobs.env_names() == {
        "bucket": "KNOBS_BUCKET", "dry_run": "KNOBS_DRY_RUN", "retries": "KNOBS_RETRIES",
        "backoff_seconds": "KNOBS_BACKOFF_SECONDS", "labels": "KNOBS_LABELS",
        "windows": "KNOBS_WINDOWS"}


@pytest.mark.parametrize(("env", "message"), [
    ({"KNOBS_RETRIES": "1"}, "bucket (KNOBS_BUCKET): is required"),
    ({"KNOBS_BUCKET": "b", "KNOBS_DRY_RUN": "maybe"},
     "dry_run (KNOBS_DRY_RUN): 'maybe' is not a boolean (true/false)"),
    ({"KNOBS_BUCKET": "b", "KNOBS_RETRIES": "3.5"},
     "retries (KNOBS_RETRIES): '3.5' is not a whole number"),
    ({"KNOBS_BUCKET": "b", "KNOBS_BACKOFF_SECONDS": "soon"},
     "backoff_seconds (KNOBS_BACKOFF_SECONDS): 'soon' is not a number"),
    ({"KNOBS_BUCKET": "b", "KNOBS_WINDOWS": "hourly,Weekly"},
     "windows (KNOBS_WINDOWS): unknown window 'weekly'; choose from hourly, daily"),
])
def test_a_bad_value_names_the_setting_and_its_variable_first(
    env: dict[str, str], message: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        Knobs.from_env(env)
    assert str(caught.value) == message


def test_the_usage_windows_error_the_readme_quotes() -> None:
    with pytest.raises(ConfigError) as caught:
        AggregatorConfig.from_env({"SNAPSHOT_WINDOWS": "hourly,weekly"})
    assert str(caught.value) == ("snapshot_windows (SNAPSHOT_WINDOWS): unknown window 'weekly'; "
                                 "choose from hourly, daily, monthly")


def test_a_field_type_without_a_parser_fails_loudly_instead_of_passing_text() -> None:
    @dataclass(frozen=True)
    class Odd(EnvSettings):
        ratio: complex = 1j

    with pytest.raises(TypeError, match=r"Odd.ratio: no parser"):
        Odd.from_env({"RATIO": "2j"})



@dataclass(frozen=True)
class Documented(EnvSettings, env_prefix="MINE_"):
    """A pipeline that also reads a seed document's names, declaring only the map."""

    table: str = "ours"
    retries: int = 3

    DOCUMENT_ENV_NAMES: ClassVar[Mapping[str, str]] = {
        "table": "TABLE_NAME", "retries": "MAX_RETRIES"}


def test_a_document_variable_stands_in_for_ours_when_ours_is_unset() -> None:
    assert Documented.from_env({}) == Documented()
    assert Documented.from_env({"TABLE_NAME": "theirs", "MAX_RETRIES": "5"}) == Documented(
        table="theirs", retries=5)
    assert Documented.from_env({"MINE_TABLE": "mine"}).table == "mine"
    assert Documented.from_env({"MINE_TABLE": "same", "TABLE_NAME": "same"}).table == "same"


def test_ours_and_the_documents_both_set_and_different_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError) as caught:
        Documented.from_env({"MINE_RETRIES": "3", "MAX_RETRIES": "5"})
    assert str(caught.value) == ("retries (MINE_RETRIES): MINE_RETRIES='3' and "
                                 "MAX_RETRIES='5' disagree; set one of them")


def test_a_document_name_for_no_field_fails_loudly_instead_of_being_ignored() -> None:
    @dataclass(frozen=True)
    class Typo(EnvSettings):
        table: str = "ours"

        DOCUMENT_ENV_NAMES: ClassVar[Mapping[str, str]] = {"tabel": "TABLE_NAME"}

    with pytest.raises(TypeError, match=r"Typo.DOCUMENT_ENV_NAMES: 'tabel' is not a field"):
        Typo.from_env({"TABLE_NAME": "theirs"})

_NAME = st.from_regex(r"[A-Za-z0-9_.-]{3,20}", fullmatch=True)
_WORD = st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True)
_PREFIX = st.from_regex(r"([a-z0-9]{1,8}/){0,3}", fullmatch=True)
_LEVEL = st.sampled_from(["DEBUG", "INFO", "warning", "Error"])


@settings(deadline=None)  # a shared, loaded machine must not fail a pure test
@given(
    table=_NAME, windows=st.lists(st.sampled_from(list(Window)), min_size=1, max_size=3,
                                  unique=True),
    ttl=st.integers(0, 36_500), archival=st.booleans(), refill=st.booleans(),
    bucket=st.sampled_from(["", "archive-bucket"]), prefix=_PREFIX,
    excluded=st.lists(_WORD, max_size=3).map(tuple), scale=st.integers(1, 10**12),
    workers=st.integers(1, 64), level=_LEVEL,
)
def test_usage_settings_round_trip_through_the_environment(
    table: str, windows: list[Window], ttl: int, archival: bool, refill: bool, bucket: str,
    prefix: str, excluded: tuple[str, ...], scale: int, workers: int, level: str,
) -> None:
    config = AggregatorConfig(
        table_name=table, snapshot_windows=tuple(windows), snapshot_ttl_days=ttl,
        enable_archival=archival, enable_refill=refill, archive_bucket_name=bucket,
        archive_prefix=prefix, excluded_counters=excluded, counter_scale=scale,
        max_workers=workers, log_level=level)
    assert AggregatorConfig.from_env(config.to_env()) == config


@settings(deadline=None)
@given(
    windows=st.lists(st.sampled_from([Window.HOURLY, Window.DAILY]), min_size=1, unique=True),
    event_types=st.lists(_WORD, min_size=1, max_size=4, unique=True),
    shards=st.integers(1, 256), archival=st.booleans(), prefix=_PREFIX,
    max_bytes=st.integers(1024, 5 * 1024 * 1024), workers=st.integers(1, 64),
)
def test_event_settings_round_trip_through_the_environment(
    windows: list[Window], event_types: list[str], shards: int, archival: bool, prefix: str,
    max_bytes: int, workers: int,
) -> None:
    config = EventMetricsConfig(
        windows=tuple(windows), event_types=tuple(event_types), unique_user_shards=shards,
        enable_archival=archival, archive_prefix=prefix, archive_max_bytes=max_bytes,
        max_workers=workers)
    assert EventMetricsConfig.from_env(config.to_env()) == config


@settings(deadline=None)
@given(
    bucket=st.from_regex(r"[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]", fullmatch=True), table=_NAME,
    prefix=st.sampled_from(["", "bundles/", "a/b/"]), input_mb=st.integers(1, 4096),
    objects=st.integers(1, 99), lease=st.integers(60, 7200), workers=st.integers(1, 32),
)
def test_bundler_settings_round_trip_through_the_environment(
    bucket: str, table: str, prefix: str, input_mb: int, objects: int, lease: int,
    workers: int,
) -> None:
    config = BundlerConfig(
        distribution_bucket_name=bucket, idempotency_table_name=table, bundle_prefix=prefix,
        max_bundle_input_mb=input_mb, max_bundle_objects=objects, claim_lease_seconds=lease,
        max_workers=workers)
    assert BundlerConfig.from_env(config.to_env()) == config


@settings(deadline=None)
@given(
    table=_NAME, status=_WORD, ttl=st.integers(0, 3650), decimals=st.integers(0, 10),
    backoff=st.floats(min_value=1e-6, max_value=30, allow_nan=False).flatmap(
        lambda base: st.tuples(st.just(base), st.floats(min_value=base, max_value=30))),
)
def test_projection_settings_round_trip_through_the_environment(
    table: str, status: str, ttl: int, decimals: int, backoff: tuple[float, float],
) -> None:
    config = ProjectionConfig(
        dashboard_table_name=table, analyzed_status=status, ttl_days=ttl,
        score_decimals=decimals, backoff_base_seconds=backoff[0],
        backoff_max_seconds=backoff[1])
    assert ProjectionConfig.from_env(config.to_env()) == config
