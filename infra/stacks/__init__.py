"""The deployable stacks."""

from infra.stacks.aggregator_stack import AggregatorStack

__all__ = ["AggregatorStack"]
