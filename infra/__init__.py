"""CDK constructs and stacks of the stream aggregator."""

from infra.alarms import AlarmThresholds
from infra.stacks.aggregator_stack import AggregatorStack
from infra.stream_aggregator import StreamAggregator

__all__ = ["AggregatorStack", "AlarmThresholds", "StreamAggregator"]
