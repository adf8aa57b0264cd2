"""The default filter criteria let through every record the handler uses.

A record the filter drops is gone for good, so the property that matters is
"handler uses it => filter matches it", checked here against the handler's own
predicates (``is_source_record``, ``is_archivable``) with a small evaluator of the
exact-value matching the filters use.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.archiver import is_archivable
from aggregator.config import AggregatorConfig
from aggregator.processor import is_source_record
from infra.filters import default_filters, patterns
from streamagg_engine.records import parse_record


def _matches_rule(value: str, rule: Any) -> bool:
    if isinstance(rule, str):
        return value == rule
    raise AssertionError(f"operator not evaluated here: {rule}")


def _matches(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    for key, expected in pattern.items():
        if key not in record:
            return False
        actual = record[key]
        if isinstance(expected, dict):
            if not isinstance(actual, dict) or not _matches(expected, actual):
                return False
        elif not any(_matches_rule(actual, rule) for rule in expected):
            return False
    return True


def _passes(config: AggregatorConfig, record: dict[str, Any]) -> bool:
    return any(_matches(p, record) for p in patterns(default_filters(config)))


def _record(event_name: str, pk: str) -> dict[str, Any]:
    return {
        "eventID": "e1", "eventName": event_name,
        "dynamodb": {"Keys": {"PK": {"S": pk}, "SK": {"S": "#STATE"}},
                     "SequenceNumber": "100", "ApproximateCreationDateTime": 1_700_000_000},
    }


def _used_by_handler(config: AggregatorConfig, raw: dict[str, Any]) -> bool:
    record = parse_record(raw)
    source = record.event_name != "REMOVE" and is_source_record(record, config)
    return source or (config.enable_archival and is_archivable(record, config))


ARCHIVING = AggregatorConfig()
NOT_ARCHIVING = AggregatorConfig(enable_archival=False)


@pytest.mark.parametrize(("event", "pk", "passes"), [
    ("INSERT", "nsA1b2C3d4E/BUCKET#user-1#gpt-4#0", True),
    ("MODIFY", "nsA1b2C3d4E/BUCKET#user-1#gpt-4#0", True),
    ("MODIFY", "BUCKET#user-1#gpt-4#0", True),
    ("REMOVE", "nsA1b2C3d4E/AUDIT#user-1", True),
    ("REMOVE", "AUDIT#user-1", True),
])
def test_default_filters_with_archival(event: str, pk: str, passes: bool) -> None:
    assert _passes(ARCHIVING, _record(event, pk)) is passes


def test_without_archival_no_removal_invokes_the_function() -> None:
    assert not _passes(NOT_ARCHIVING, _record("REMOVE", "ns/AUDIT#user-1"))
    assert _passes(NOT_ARCHIVING, _record("MODIFY", "ns/BUCKET#user-1#gpt-4#0"))
    assert _passes(NOT_ARCHIVING, _record("INSERT", "ns/BUCKET#user-1#gpt-4#0"))


def test_filters_use_only_event_names() -> None:
    assert patterns(default_filters(ARCHIVING)) == [{"eventName": ["INSERT", "MODIFY", "REMOVE"]}]
    assert patterns(default_filters(NOT_ARCHIVING)) == [{"eventName": ["INSERT", "MODIFY"]}]


def test_patterns_are_compact_json_within_lambdas_limit() -> None:
    for f in default_filters(ARCHIVING):
        assert len(f["pattern"]) <= 4096
        assert json.loads(f["pattern"])
    assert len(default_filters(ARCHIVING)) <= 5


_key_text = st.text(alphabet=st.sampled_from("ab/#*\\BUCKETAUDIT"), max_size=24)


@given(event=st.sampled_from(["INSERT", "MODIFY", "REMOVE"]),
       head=_key_text, marker=st.sampled_from(["BUCKET#", "AUDIT#", ""]), tail=_key_text,
       archival=st.booleans())
def test_every_record_the_handler_uses_passes_the_filter(
    event: str, head: str, marker: str, tail: str, archival: bool
) -> None:
    pk = head + marker + tail
    if not pk:
        return
    config = ARCHIVING if archival else NOT_ARCHIVING
    raw = _record(event, pk)
    if _used_by_handler(config, raw):
        assert _passes(config, raw), pk
