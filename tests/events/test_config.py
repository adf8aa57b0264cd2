"""The event pipeline's settings: round trip through the environment, bad values named,
profiles and seed 003's variable names."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from streamagg_engine.errors import ConfigError
from streamagg_engine.windows import Window
from streamagg_events.config import EventMetricsConfig


def test_the_environment_rebuilds_the_same_config() -> None:
    config = EventMetricsConfig(windows=(Window.DAILY,), event_types=("view", "buy"),
                                unique_user_shards=16, enable_archival=False,
                                archive_max_events=500)
    assert EventMetricsConfig.from_env(config.to_env()) == config


def test_the_defaults_batch_archives_at_5_mb_and_1000_events() -> None:
    config = EventMetricsConfig()
    assert (config.archive_max_bytes, config.archive_max_events) == (5 * 1024 * 1024, 1000)
    assert config.windows == (Window.HOURLY, Window.DAILY)


@pytest.mark.parametrize(("env", "message"), [
    ({"EVENTS_WINDOWS": "hourly,weekly"},
     "windows (EVENTS_WINDOWS): unknown window 'weekly'; choose from hourly, daily"),
    ({"EVENTS_WINDOWS": "monthly"}, "windows (EVENTS_WINDOWS): choose one or both"),
    ({"EVENTS_EVENT_TYPES": "Click"}, "event_types (EVENTS_EVENT_TYPES): 'Click' is not"),
    ({"EVENTS_MARKER_TTL_DAYS": "1"}, "marker_ttl_days (EVENTS_MARKER_TTL_DAYS): 1 must be"),
    ({"EVENTS_ARCHIVE_MAX_BYTES": "6000000"}, "archive_max_bytes (EVENTS_ARCHIVE_MAX_BYTES)"),
    ({"EVENTS_ARCHIVE_MAX_EVENTS": "x"}, "archive_max_events (EVENTS_ARCHIVE_MAX_EVENTS): "
                                         "'x' is not a whole number"),
    ({"EVENTS_TRANSACTION_SIZE": "101"}, "transaction_size (EVENTS_TRANSACTION_SIZE)"),
    ({"EVENTS_ENABLE_ARCHIVAL": "maybe"}, "enable_archival (EVENTS_ENABLE_ARCHIVAL): 'maybe'"),
    ({"EVENTS_METRICS_TABLE_NAME": "a b"}, "metrics_table_name (EVENTS_METRICS_TABLE_NAME)"),
    ({"EVENTS_ARCHIVE_PREFIX": "/abs"}, "archive_prefix (EVENTS_ARCHIVE_PREFIX)"),
])
def test_a_bad_setting_fails_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        EventMetricsConfig.from_env(env)
    assert str(caught.value).startswith(message)


def test_the_default_profile_keeps_our_keys_table_and_no_bucket() -> None:
    config = EventMetricsConfig()
    assert (config.profile, config.key_attributes, config.metrics_table_name,
            config.archive_bucket_name) == ("default", ("pk", "sk"), "event-metrics", "")
    assert not config.archival_enabled


def test_the_seed_003_profile_takes_the_documents_keys_table_and_bucket() -> None:
    config = EventMetricsConfig.from_env({"EVENTS_PROFILE": "seed-003"})
    assert (config.key_attributes, config.metrics_table_name, config.archive_bucket_name) == (
        ("partition_key", "sort_key"), "event-aggregations", "event-archive")
    assert config.archival_enabled
    assert EventMetricsConfig.from_env(config.to_env()) == config


def test_a_setting_given_under_a_profile_wins_over_its_default() -> None:
    config = EventMetricsConfig(profile="seed-003", metrics_table_name="clicks",
                                key_attributes=("partition_key", "sort_key"))
    assert (config.metrics_table_name, config.archive_bucket_name) == ("clicks", "event-archive")
    assert EventMetricsConfig(key_attributes=("id", "range")).key_attributes == ("id", "range")


@pytest.mark.parametrize(("env", "message"), [
    ({"EVENTS_PROFILE": "seed-001"},
     "profile (EVENTS_PROFILE): unknown profile 'seed-001'; choose from default, seed-003"),
    ({"EVENTS_PROFILE": "seed-003", "EVENTS_KEY_ATTRIBUTES": "pk,sk"},
     "key_attributes (EVENTS_KEY_ATTRIBUTES): 'pk,sk' conflicts with profile seed-003, whose "
     "table has keys partition_key,sort_key"),
    ({"EVENTS_KEY_ATTRIBUTES": "pk"}, "key_attributes (EVENTS_KEY_ATTRIBUTES): name the "
                                      "partition key and the sort key"),
    ({"EVENTS_KEY_ATTRIBUTES": "pk,pk"}, "key_attributes (EVENTS_KEY_ATTRIBUTES): name the"),
    ({"EVENTS_KEY_ATTRIBUTES": "pk,window"},
     "key_attributes (EVENTS_KEY_ATTRIBUTES): 'window' is not a free attribute name"),
    ({"EVENTS_KEY_ATTRIBUTES": "n_click,sk"},
     "key_attributes (EVENTS_KEY_ATTRIBUTES): 'n_click' is not a free attribute name"),
    ({"EVENTS_KEY_ATTRIBUTES": "pk,s k"},
     "key_attributes (EVENTS_KEY_ATTRIBUTES): 's k' is not a free attribute name"),
])
def test_a_bad_profile_or_key_name_fails_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        EventMetricsConfig.from_env(env)
    assert str(caught.value).startswith(message)


_NAMES = st.from_regex(r"[a-z0-9][a-z0-9.-]{2,40}", fullmatch=True)
_DOCUMENT = [("metrics_table_name", "EVENTS_METRICS_TABLE_NAME", "DYNAMODB_TABLE"),
             ("archive_bucket_name", "EVENTS_ARCHIVE_BUCKET_NAME", "S3_BUCKET")]


@settings(max_examples=60, deadline=None)
@given(profile=st.sampled_from(["default", "seed-003"]), names=st.lists(_NAMES, min_size=2,
                                                                          max_size=2))
def test_the_documents_variables_stand_in_for_ours_when_ours_are_absent(
        profile: str, names: list[str]) -> None:
    document = {"EVENTS_PROFILE": profile, "DYNAMODB_TABLE": names[0], "S3_BUCKET": names[1]}
    config = EventMetricsConfig.from_env(document)
    assert (config.metrics_table_name, config.archive_bucket_name) == tuple(names)
    ours = {"EVENTS_PROFILE": profile, "EVENTS_METRICS_TABLE_NAME": names[0],
            "EVENTS_ARCHIVE_BUCKET_NAME": names[1]}
    assert EventMetricsConfig.from_env({**document, **ours}) == config
    assert EventMetricsConfig.from_env(ours) == config


@settings(max_examples=60, deadline=None)
@given(which=st.sampled_from(_DOCUMENT), ours=_NAMES, theirs=_NAMES)
def test_ours_and_the_documents_variable_set_differently_is_an_error_naming_both(
        which: tuple[str, str, str], ours: str, theirs: str) -> None:
    assume(ours != theirs)
    name, variable, document = which
    with pytest.raises(ConfigError) as caught:
        EventMetricsConfig.from_env({variable: ours, document: theirs})
    assert str(caught.value) == (f"{name} ({variable}): {variable}={ours!r} and "
                                 f"{document}={theirs!r} disagree; set one of them")


@settings(max_examples=30, deadline=None)
@given(url=st.text(max_size=80))
def test_the_documents_dlq_url_changes_nothing(url: str) -> None:
    env = {"EVENTS_PROFILE": "seed-003"}
    assert EventMetricsConfig.from_env({**env, "DLQ_URL": url}) == \
        EventMetricsConfig.from_env(env)
