"""CDK constructs and stacks of the stream aggregator."""

from infra.stacks.aggregator_stack import AggregatorStack
from infra.stream_aggregator import StreamAggregator

__all__ = ["AggregatorStack", "StreamAggregator"]
