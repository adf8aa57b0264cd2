"""Experiment and assignment data for a batch's events, read once per invocation.

The lookup table (key ``pk``) holds ``EXPERIMENT#<experiment_id>`` items (``name``,
``status``, ``variants``) and ``ASSIGNMENT#<experiment_id>#<user_id>`` items (``variant``,
``assigned_at``). A batch asks for the *distinct* keys of its events in one
:meth:`Lookups.fetch` (BatchGetItem, 100 keys a request), so a thousand events of one
experiment cost one read of the experiment, not a thousand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from streamagg_engine.ddb_json import get_string
from streamagg_engine.errors import MalformedRecordError

from .schema import Event, timestamp_ms

UNASSIGNED = "unassigned"
"""The variant of a user with no assignment: counted, and visible, never dropped."""


class Lookups(Protocol):
    def fetch(self, keys: Iterable[str]) -> Mapping[str, Mapping[str, Any]]:
        """The items with these ``pk`` values (DynamoDB JSON); absent keys are left out."""
        ...


def experiment_key(experiment_id: str) -> str:
    return f"EXPERIMENT#{experiment_id}"


def assignment_key(experiment_id: str, user_id: str) -> str:
    return f"ASSIGNMENT#{experiment_id}#{user_id}"


@dataclass(frozen=True, slots=True)
class Enriched:
    event: Event
    variant: str
    experiment_name: str
    ms_since_assignment: int | None
    """How long after the user's assignment the event happened, when known."""


def keys_for(events: Iterable[Event]) -> set[str]:
    keys: set[str] = set()
    for event in events:
        keys.add(experiment_key(event.experiment_id))
        keys.add(assignment_key(event.experiment_id, event.user_id))
    return keys


def enrich(event: Event, found: Mapping[str, Mapping[str, Any]]) -> Enriched:
    """The event with its variant; MalformedRecordError for an unknown experiment."""
    experiment = found.get(experiment_key(event.experiment_id))
    if experiment is None:
        raise MalformedRecordError(f"unknown experiment {event.experiment_id!r}")
    name = get_string(experiment, "name")
    assignment = found.get(assignment_key(event.experiment_id, event.user_id))
    variant, since = UNASSIGNED, None
    if assignment is not None:
        variant = get_string(assignment, "variant") or UNASSIGNED
        assigned_at = get_string(assignment, "assigned_at")
        if assigned_at is not None:
            try:
                since = event.timestamp_ms - timestamp_ms(assigned_at)
            except ValueError:
                since = None
    return Enriched(event=event, variant=variant,
                    experiment_name=name or event.experiment_id,
                    ms_since_assignment=since)
