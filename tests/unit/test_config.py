import pytest

from aggregator.config import AggregatorConfig
from streamagg_engine.errors import ConfigError
from streamagg_engine.windows import Window


def test_defaults_follow_the_reviewed_aggregator() -> None:
    config = AggregatorConfig.from_env({})
    assert config.table_name == "rate-limits"
    assert config.snapshot_windows == (Window.HOURLY, Window.DAILY)
    assert config.snapshot_ttl_days == 90
    assert config.snapshot_table == "rate-limits"


def test_monthly_windows_can_be_enabled() -> None:
    config = AggregatorConfig.from_env({"SNAPSHOT_WINDOWS": "hourly, daily,MONTHLY"})
    assert config.snapshot_windows == (Window.HOURLY, Window.DAILY, Window.MONTHLY)


@pytest.mark.parametrize(("env", "bucket", "enabled"), [
    ({"ENABLE_ARCHIVAL": "false", "ARCHIVE_BUCKET_NAME": "b"}, "b", False),
    ({"ENABLE_ARCHIVAL": "true", "ARCHIVE_BUCKET_NAME": ""}, "", False),
    ({"ENABLE_ARCHIVAL": "true", "ARCHIVE_BUCKET_NAME": "b"}, "b", True),
    ({"ARCHIVE_BUCKET_NAME": "b"}, "b", True),
])
def test_archival_needs_both_the_switch_and_a_bucket(
    env: dict[str, str], bucket: str, enabled: bool
) -> None:
    config = AggregatorConfig.from_env(env)
    assert config.archive_bucket_name == bucket
    assert config.archival_enabled is enabled


@pytest.mark.parametrize(("env", "names"), [
    ({"SNAPSHOT_WINDOWS": "hourly,weekly"}, "SNAPSHOT_WINDOWS"),
    ({"SNAPSHOT_WINDOWS": ""}, "SNAPSHOT_WINDOWS"),
    ({"SNAPSHOT_WINDOWS": "daily,daily"}, "SNAPSHOT_WINDOWS"),
    ({"SNAPSHOT_TTL_DAYS": "ninety"}, "SNAPSHOT_TTL_DAYS"),
    ({"SNAPSHOT_TTL_DAYS": "-1"}, "SNAPSHOT_TTL_DAYS"),
    ({"ENABLE_ARCHIVAL": "maybe"}, "ENABLE_ARCHIVAL"),
    ({"TABLE_NAME": "a b"}, "TABLE_NAME"),
    ({"COUNTER_ATTRIBUTE": "b_tc"}, "COUNTER_ATTRIBUTE"),
    ({"COUNTER_SCALE": "0"}, "COUNTER_SCALE"),
    ({"MAX_WORKERS": "1000"}, "MAX_WORKERS"),
    ({"SNAPSHOT_SK": "#USAGE#{resource}#{window_key}"}, "SNAPSHOT_SK"),
    ({"SNAPSHOT_PK": "{ns}/ENTITY#{user}"}, "SNAPSHOT_PK"),
    ({"ARCHIVE_KEY_MARKER": "BUCKET#X"}, "ARCHIVE_KEY_MARKER"),
    ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
])
def test_a_bad_setting_fails_with_a_message_naming_it(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        AggregatorConfig.from_env(env)


def test_one_window_needs_no_window_in_the_key() -> None:
    config = AggregatorConfig.from_env({
        "SNAPSHOT_WINDOWS": "hourly", "SNAPSHOT_SK": "#USAGE#{resource}#{window_key}",
    })
    assert config.snapshot_sk == "#USAGE#{resource}#{window_key}"


def test_counter_attribute_pattern_names_the_limit_and_excludes_wcu() -> None:
    config = AggregatorConfig()
    assert config.counter_name("b_rpm_tc") == "rpm"
    assert config.counter_name("b_tokens.v2_tc") == "tokens.v2"
    assert config.counter_name("b_rpm_tk") is None
    assert config.counter_name("b_wcu_tc") is None
