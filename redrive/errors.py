"""The redrive's exceptions."""

from __future__ import annotations


class RedriveError(Exception):
    """Base class of everything the redrive raises on purpose."""


class NotOnFailureMessageError(RedriveError, ValueError):
    """A queue message is not Lambda's on-failure record of a DynamoDB stream batch."""


class StreamReadError(RedriveError):
    """The stream could not be read for a reason other than the range having expired."""


class FunctionError(RedriveError):
    """The aggregator failed a whole batch (it raised, or Lambda reported a function error)."""


class UnsupportedFilterError(RedriveError, ValueError):
    """The event source mapping's filter uses syntax the redrive cannot evaluate."""
