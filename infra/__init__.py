"""CDK constructs and stacks of the stream aggregator and its sibling pipelines."""

from infra.alarms import AlarmThresholds
from infra.bundles import ObjectBundler
from infra.event_metrics import EventMetricsAggregator
from infra.projection import ProjectionStage
from infra.stacks.aggregator_stack import AggregatorStack
from infra.stream_aggregator import StreamAggregator

__all__ = [
    "AggregatorStack",
    "AlarmThresholds",
    "EventMetricsAggregator",
    "ObjectBundler",
    "ProjectionStage",
    "StreamAggregator",
]
