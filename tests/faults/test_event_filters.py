"""Lambda's filter rules, as the local mappings apply them, and the mappings applying them.

The property tests build patterns from the records themselves, so each rule is checked
against its definition on every shape of value, not on a few hand-picked examples.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from local_aws.event_source_mapping import (
    KINESIS,
    LocalEventSourceMapping,
    MappingSettings,
    sqs_record,
)
from local_aws.events_harness import kinesis_record
from local_aws.filters import Filters, filter_view, matches
from local_aws.stream_records import lambda_record

_scalars = st.one_of(st.text(max_size=6), st.integers(-1000, 1000), st.booleans(), st.none())
_names = st.text("abcdef", min_size=1, max_size=3)
_documents = st.recursive(
    st.dictionaries(_names, _scalars, max_size=4),
    lambda children: st.dictionaries(_names, st.one_of(_scalars, children), max_size=4),
    max_leaves=12)


def _exact_pattern(document: dict[str, Any], keep: st.DataObject) -> dict[str, Any]:
    """A pattern of some of ``document``'s leaves, each allowing exactly its value."""
    pattern: dict[str, Any] = {}
    for name, value in document.items():
        if not keep.draw(st.booleans()):
            continue
        if isinstance(value, dict):
            pattern[name] = _exact_pattern(value, keep)
        else:
            pattern[name] = [value]
    return pattern


@given(_documents, st.data())
def test_a_pattern_of_a_records_own_values_matches_it(document: dict[str, Any],
                                                      keep: st.DataObject) -> None:
    assert matches(_exact_pattern(document, keep), document)


@given(_documents, _names, _scalars, _scalars)
def test_exact_values_and_anything_but_split_every_present_field(
        document: dict[str, Any], name: str, stored: Any, allowed: Any) -> None:
    record = {**document, name: stored}
    exact = matches({name: [allowed]}, record)
    assert exact != matches({name: [{"anything-but": [allowed]}]}, record)
    assert exact == (stored == allowed and type(stored) is type(allowed))


@given(_documents, _names, st.booleans())
def test_exists_says_whether_the_field_is_there(document: dict[str, Any], name: str,
                                                wanted: bool) -> None:
    present = name in document
    assert matches({name: [{"exists": wanted}]}, document) == (present == wanted)


@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(-50, 50))
def test_numeric_ranges_compare_numbers(value: int, low: int, high: int) -> None:
    pattern = {"n": [{"numeric": [">=", low, "<", high]}]}
    assert matches(pattern, {"n": value}) == (low <= value < high)
    assert not matches(pattern, {"n": str(value)})  # a string is not a number


@given(st.text(max_size=8), st.text(max_size=3))
def test_prefix_suffix_and_case(value: str, affix: str) -> None:
    record = {"v": value}
    assert matches({"v": [{"prefix": affix}]}, record) == value.startswith(affix)
    assert matches({"v": [{"suffix": affix}]}, record) == value.endswith(affix)
    assert matches({"v": [{"anything-but": {"prefix": affix}}]}, record) != \
        value.startswith(affix)
    assert matches({"v": [{"equals-ignore-case": value.upper()}]}, record) == \
        (value.upper().casefold() == value.casefold())


def test_a_list_in_the_record_matches_if_any_element_does() -> None:
    assert matches({"tags": ["AI"]}, {"tags": ["markets", "AI"]})
    assert not matches({"tags": ["AI"]}, {"tags": []})


def test_a_number_never_equals_a_bool() -> None:
    assert not matches({"v": [1]}, {"v": True})
    assert matches({"v": [1]}, {"v": 1.0})


def _data(document: Any) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def test_kinesis_patterns_see_the_decoded_json_data() -> None:
    filters = Filters(({"data": {"event_type": ["purchase"]}},))
    assert filters.keeps(kinesis_record(_data({"event_type": "purchase"}), 1, "p", 0.0))
    assert not filters.keeps(kinesis_record(_data({"event_type": "click"}), 2, "p", 0.0))
    assert not filters.keeps(kinesis_record(_data([1, 2]), 3, "p", 0.0))
    assert not filters.keeps(kinesis_record("!!not base64!!", 4, "p", 0.0))
    assert filter_view(kinesis_record("!!not base64!!", 4, "p", 0.0))["data"] == \
        "!!not base64!!"


def test_sqs_patterns_see_the_parsed_body_or_the_plain_string() -> None:
    json_body = Filters(({"body": {"Records": {"eventName": [{"prefix": "ObjectCreated:"}]}}},))
    created = json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]})
    assert json_body.keeps(sqs_record("m1", created))
    assert not json_body.keeps(sqs_record("m2", json.dumps({"Event": "s3:TestEvent"})))
    assert not json_body.keeps(sqs_record("m3", "{not json"))
    assert Filters(({"body": ["ping"]},)).keeps(sqs_record("m4", "ping"))


def test_dynamodb_patterns_see_the_typed_images() -> None:
    analysed = {"status": {"S": "analyzed"}}
    filters = Filters(({"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {
        "status": {"S": ["analyzed"]}}}},))
    keys = {"id": {"S": "a"}}
    assert filters.keeps(lambda_record("INSERT", keys=keys, sequence="1", created=0,
                                                new=analysed))
    assert not filters.keeps(lambda_record("REMOVE", keys=keys, sequence="2", created=0,
                                                    old=analysed))


def test_the_mapping_never_invokes_for_filtered_records() -> None:
    properties = {"BatchSize": 10, "FilterCriteria": {"Filters": [
        {"Pattern": json.dumps({"data": {"keep": [True]}})}]}}
    events: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        events.append(event)
        return {"batchItemFailures": []}

    mapping = LocalEventSourceMapping(
        None, "arn:aws:kinesis:us-east-1:123456789012:stream/s", invoke,
        settings=MappingSettings.from_template(properties), on_failure=lambda _: None,
        clock=time.time, shape=KINESIS)
    records = [kinesis_record(_data({"keep": i % 3 == 0}), i, "p", time.time())
               for i in range(1, 10)]
    report = mapping.deliver("shard-1", records)
    delivered = [r["kinesis"]["sequenceNumber"] for e in events for r in e["Records"]]
    assert delivered == ["3", "6", "9"]
    assert (report.records_filtered, report.records_delivered, report.invocations) == (6, 3, 1)
