from __future__ import annotations

import pytest

from streamagg_engine.errors import ConfigError
from streamagg_projection.config import ProjectionConfig


def test_environment_round_trips() -> None:
    config = ProjectionConfig(dashboard_table_name="dash", ttl_days=3, write_attempts=2,
                              backoff_base_seconds=0.1, analyzed_status="done")
    assert ProjectionConfig.from_env(config.to_env()) == config


@pytest.mark.parametrize(("env", "message"), [
    ({"PROJECTION_TTL_DAYS": "seven"}, "ttl_days (PROJECTION_TTL_DAYS): 'seven' is not"),
    ({"PROJECTION_TTL_DAYS": "-1"}, "ttl_days (PROJECTION_TTL_DAYS): -1 must be"),
    ({"PROJECTION_WRITE_ATTEMPTS": "0"}, "write_attempts"),
    ({"PROJECTION_DASHBOARD_TABLE_NAME": "a b"}, "dashboard_table_name"),
    ({"PROJECTION_BACKOFF_BASE_SECONDS": "5", "PROJECTION_BACKOFF_MAX_SECONDS": "1"},
     "backoff_base_seconds"),
    ({"PROJECTION_ANALYZED_STATUS": " "}, "analyzed_status"),
    ({"PROJECTION_LOG_LEVEL": "LOUD"}, "log_level"),
])
def test_a_bad_setting_is_refused_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ProjectionConfig.from_env(env)
