"""The bundler's settings: one variable each, and a bad one named in the error."""

from __future__ import annotations

import pytest

from streamagg_bundles.config import BundlerConfig
from streamagg_engine.errors import ConfigError

REQUIRED = {"DISTRIBUTION_BUCKET_NAME": "distribution", "IDEMPOTENCY_TABLE_NAME": "claims"}


def test_the_environment_round_trips() -> None:
    config = BundlerConfig(distribution_bucket_name="dist", idempotency_table_name="claims",
                           bundle_prefix="bundles/", max_bundle_input_mb=7,
                           idempotency_ttl_days=21)
    assert BundlerConfig.from_env(config.to_env()) == config


def test_defaults_follow_the_seed() -> None:
    config = BundlerConfig.from_env(REQUIRED)
    assert config.max_bundle_input_mb == 100
    assert config.max_input_bytes == 100 * 1024 * 1024
    assert config.bundle_prefix == ""


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_a_missing_required_setting_is_named(missing: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ConfigError, match=f"\\({missing}\\): is required"):
        BundlerConfig.from_env(env)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("MAX_BUNDLE_INPUT_MB", "0", "MAX_BUNDLE_INPUT_MB.*from 1 to 4096"),
    ("MAX_BUNDLE_INPUT_MB", "5000", "MAX_BUNDLE_INPUT_MB.*from 1 to 4096"),
    ("MAX_BUNDLE_INPUT_MB", "lots", "MAX_BUNDLE_INPUT_MB.*not a whole number"),
    ("MAX_BUNDLE_OBJECTS", "100", "MAX_BUNDLE_OBJECTS.*from 1 to 99"),
    ("IDEMPOTENCY_TTL_DAYS", "0", "IDEMPOTENCY_TTL_DAYS"),
    ("BUNDLE_PREFIX", "bundles", "BUNDLE_PREFIX.*ending with '/'"),
    ("BUNDLE_PREFIX", "/bundles/", "BUNDLE_PREFIX"),
    ("DISTRIBUTION_BUCKET_NAME", "Not_A_Bucket", "DISTRIBUTION_BUCKET_NAME"),
    ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
])
def test_a_bad_value_fails_naming_its_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BundlerConfig.from_env({**REQUIRED, variable: value})


def test_the_seed_001_profile_fills_the_documents_format_and_partition() -> None:
    config = BundlerConfig.from_env({**REQUIRED, "PROFILE": "seed-001"})
    assert (config.bundle_format, config.partition_by) == ("gzip", "write-time")
    assert BundlerConfig.from_env(config.to_env()) == config
    default = BundlerConfig.from_env(REQUIRED)
    assert (default.profile, default.bundle_format, default.partition_by) == \
        ("default", "tar", "event-time")


def test_the_default_profile_takes_either_format_and_partition() -> None:
    config = BundlerConfig.from_env({**REQUIRED, "BUNDLE_FORMAT": "gzip",
                                     "PARTITION_BY": "write-time"})
    assert (config.profile, config.bundle_format, config.partition_by) == \
        ("default", "gzip", "write-time")


@pytest.mark.parametrize(("env", "message"), [
    ({"PROFILE": "seed-002"}, r"profile \(PROFILE\): unknown profile 'seed-002'; choose from "
     "default, seed-001"),
    ({"PROFILE": "seed-001", "BUNDLE_FORMAT": "tar"},
     r"bundle_format \(BUNDLE_FORMAT\): 'tar' conflicts with profile seed-001 \(PROFILE\)"),
    ({"PROFILE": "seed-001", "PARTITION_BY": "event-time"},
     r"partition_by \(PARTITION_BY\): 'event-time' conflicts with profile seed-001"),
    ({"BUNDLE_FORMAT": "zip"}, r"bundle_format \(BUNDLE_FORMAT\): unknown value 'zip'"),
    ({"PARTITION_BY": "now"}, r"partition_by \(PARTITION_BY\): unknown value 'now'"),
    ({"SERVICE_NAME": "data aggregator"}, r"service_name \(SERVICE_NAME\)"),
])
def test_a_profile_conflict_fails_naming_both_settings(env: dict[str, str],
                                                       message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BundlerConfig.from_env({**REQUIRED, **env})
