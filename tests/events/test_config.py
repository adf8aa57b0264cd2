"""The event pipeline's settings: round trip through the environment, bad values named."""

from __future__ import annotations

import pytest

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
