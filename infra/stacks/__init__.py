"""The deployable stacks."""

from .aggregator_stack import AggregatorStack

__all__ = ["AggregatorStack"]
