"""CDK constructs and stacks of the stream aggregator and its sibling pipelines.

Installed, this package is ``cdk_stream_aggregator``; in a checkout it is ``infra/``.
"""

from .alarms import AlarmThresholds
from .bundles import ObjectBundler
from .event_metrics import EventMetricsAggregator
from .pipeline_settings import (
    AggregatorConfig,
    BundlerConfig,
    ConfigError,
    EventMetricsConfig,
    ProjectionConfig,
    Window,
)
from .projection import ProjectionStage
from .stacks.aggregator_stack import AggregatorStack
from .stream_aggregator import StreamAggregator

__version__ = "0.2.0"

__all__ = [
    "AggregatorConfig",
    "AggregatorStack",
    "AlarmThresholds",
    "BundlerConfig",
    "ConfigError",
    "EventMetricsAggregator",
    "EventMetricsConfig",
    "ObjectBundler",
    "ProjectionConfig",
    "ProjectionStage",
    "StreamAggregator",
    "Window",
]
