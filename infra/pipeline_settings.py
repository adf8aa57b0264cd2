"""What the constructs read from each pipeline's Lambda code at synth: its settings class,
environment names, metric namespace and metric names (one definition, two sides).

The names are loaded through :mod:`infra.lambda_code`, so a user's own ``aggregator``
package never shadows the usage pipeline's; type checkers read the same modules from
``lambda_src`` (``mypy_path``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lambda_code import module

if TYPE_CHECKING:
    from aggregator.config import ENV_NAMES as USAGE_ENV_NAMES
    from aggregator.config import AggregatorConfig
    from aggregator.metrics import COUNTS as USAGE_COUNTS
    from aggregator.metrics import NAMESPACE as USAGE_NAMESPACE
    from streamagg_bundles.config import ENV_NAMES as BUNDLER_ENV_NAMES
    from streamagg_bundles.config import BundlerConfig
    from streamagg_bundles.metrics import COUNTS as BUNDLER_COUNTS
    from streamagg_bundles.metrics import NAMESPACE as BUNDLER_NAMESPACE
    from streamagg_engine.errors import ConfigError
    from streamagg_engine.metrics import DIMENSION, DURATION
    from streamagg_engine.windows import Window
    from streamagg_events.config import ENV_NAMES as EVENTS_ENV_NAMES
    from streamagg_events.config import EventMetricsConfig
    from streamagg_events.metrics import COUNTS as EVENTS_COUNTS
    from streamagg_events.metrics import NAMESPACE as EVENTS_NAMESPACE
    from streamagg_projection import transform as projection_item
    from streamagg_projection.config import ENV_NAMES as PROJECTION_ENV_NAMES
    from streamagg_projection.config import ProjectionConfig
    from streamagg_projection.metrics import COUNTS as PROJECTION_COUNTS
    from streamagg_projection.metrics import METRICS as PROJECTION_METRICS
    from streamagg_projection.metrics import NAMESPACE as PROJECTION_NAMESPACE
else:
    _usage_metrics = module("aggregator", "metrics")
    ConfigError = module("streamagg_engine", "errors").ConfigError
    _engine = module("streamagg_engine", "metrics")
    DIMENSION, DURATION = _engine.DIMENSION, _engine.DURATION
    Window = module("streamagg_engine", "windows").Window

    _config = module("aggregator", "config")
    AggregatorConfig, USAGE_ENV_NAMES = _config.AggregatorConfig, _config.ENV_NAMES
    USAGE_COUNTS, USAGE_NAMESPACE = _usage_metrics.COUNTS, _usage_metrics.NAMESPACE

    _config = module("streamagg_events", "config")
    EventMetricsConfig, EVENTS_ENV_NAMES = _config.EventMetricsConfig, _config.ENV_NAMES
    _metrics = module("streamagg_events", "metrics")
    EVENTS_COUNTS, EVENTS_NAMESPACE = _metrics.COUNTS, _metrics.NAMESPACE

    _config = module("streamagg_bundles", "config")
    BundlerConfig, BUNDLER_ENV_NAMES = _config.BundlerConfig, _config.ENV_NAMES
    _metrics = module("streamagg_bundles", "metrics")
    BUNDLER_COUNTS, BUNDLER_NAMESPACE = _metrics.COUNTS, _metrics.NAMESPACE

    _config = module("streamagg_projection", "config")
    ProjectionConfig, PROJECTION_ENV_NAMES = _config.ProjectionConfig, _config.ENV_NAMES
    _metrics = module("streamagg_projection", "metrics")
    PROJECTION_COUNTS, PROJECTION_NAMESPACE = _metrics.COUNTS, _metrics.NAMESPACE
    PROJECTION_METRICS = _metrics.METRICS
    projection_item = module("streamagg_projection", "transform")

__all__ = [
    "BUNDLER_COUNTS", "BUNDLER_ENV_NAMES", "BUNDLER_NAMESPACE", "DIMENSION", "DURATION",
    "EVENTS_COUNTS", "EVENTS_ENV_NAMES", "EVENTS_NAMESPACE", "PROJECTION_COUNTS",
    "PROJECTION_ENV_NAMES", "PROJECTION_METRICS", "PROJECTION_NAMESPACE", "USAGE_COUNTS",
    "USAGE_ENV_NAMES", "USAGE_NAMESPACE", "AggregatorConfig", "BundlerConfig", "ConfigError",
    "EventMetricsConfig", "ProjectionConfig", "Window", "projection_item",
]
