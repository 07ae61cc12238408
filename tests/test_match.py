"""Tests for match conditions, their explanations and the byte prefilter they promise."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from catalog_support import alert, catalog_of, detection
from falco_risk.conditions import parse_condition
from falco_risk.errors import CatalogError
from falco_risk.falco import read_alert
from falco_risk.match import Condition
from falco_risk.otlp_values import kvlist_to_dict, to_python
from falco_risk.tagger import Tagger
from otlp_builders import falco_json

SHELL = falco_json(
    "10:00:00.0: Warning A shell was spawned in a container (user=root)",
    **{"user.name": "root", "container.name": "web", "k8s.ns.name": "ci-runners"},
)
KEYS = {"user": ("user.name", "user"), "namespace": ("k8s.ns.name",)}


def parse(spec: object) -> Condition:
    return parse_condition(spec, "test: match", lambda name: KEYS.get(name, (name,)))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"rule": "Terminal shell in container"}, True),
        ({"rule": ["Other", "Terminal shell in container"]}, True),
        ({"rule": "terminal shell in container"}, False),
        ({"priority_at_least": "notice"}, True),
        ({"priority_at_least": "warning"}, False),
        ({"tags_any": ["shell", "network"]}, True),
        ({"tags_all": ["shell", "network"]}, False),
        ({"field": {"name": "user", "equals": "root"}}, True),
        ({"field": {"name": "namespace", "in": ["ci-runners", "build"]}}, True),
        ({"field": {"name": "namespace", "regex": "^ci-"}}, True),
        ({"field": {"name": "container.name", "contains": "we"}}, True),
        ({"field": {"name": "absent.key", "equals": "x"}}, False),
        ({"resource": {"key": "com.splunk.sourcetype", "equals": "kube:container:falco"}}, True),
        ({"resource": {"key": "com.splunk.sourcetype", "regex": "^syslog"}}, False),
        ({"phrase": "shell was SPAWNED", "rule": "Terminal shell in container"}, True),
        ({"any": [{"rule": "x"}, {"priority_at_least": "notice"}]}, True),
        (
            {"all": [{"rule": "Terminal shell in container"}, {"not": {"tags_any": ["shell"]}}]},
            False,
        ),
    ],
)
def test_condition_matches_as_specified(spec: object, expected: bool) -> None:
    """Each condition kind, and their combinations, decide as the catalog reference says."""
    condition = parse(spec)
    resource = {"com.splunk.sourcetype": "kube:container:falco"}

    result = condition.matches(alert(SHELL), resource)

    assert result is expected
    assert (condition.failure(alert(SHELL), resource) is None) is expected


def test_failure_names_the_part_that_failed() -> None:
    """A failed match says which part failed and with which value."""
    condition = parse(
        {"rule": "Terminal shell in container", "field": {"name": "user", "equals": "ci"}}
    )

    reason = condition.failure(alert(SHELL), {})

    assert reason == "field user is 'root'; it should be 'ci'"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"rul": "x"}, "unknown key 'rul'"),
        ({"field": {"name": "user", "regex": "(?=lookahead)"}}, "invalid regular expression"),
        ({"field": {"name": "user", "regex": "(a"}}, "missing \\)"),
        ({"field": {"name": "user", "equals": "a", "in": ["b"]}}, "exactly one of"),
        ({"priority_at_least": "loud"}, "'loud' is not one of"),
        ({"all": []}, "non-empty list"),
        ({}, "expected a mapping"),
    ],
)
def test_invalid_condition_is_refused_with_its_place(spec: object, message: str) -> None:
    """A bad condition stops the load with a line naming where it is."""
    with pytest.raises(CatalogError, match=message) as caught:
        parse(spec)

    assert str(caught.value).startswith("test: match")


def test_regex_runs_in_linear_time_on_a_catastrophic_pattern() -> None:
    """A pattern that backtracks exponentially elsewhere answers at once on RE2."""
    condition = parse({"field": {"name": "user", "regex": "^(a+)+$"}})
    hostile = falco_json("10:00:00.0: Notice x", **{"user.name": "a" * 5000 + "!"})

    assert not condition.matches(alert(hostile), {})


def test_needles_follow_the_reference_rules() -> None:
    """Phrases and rules give needles, all takes the smallest set, not and regex give none."""
    assert parse({"phrase": "Shell Spawned"}).needles() == {b"shell spawned"}
    assert parse({"rule": ["Rule A", "Rule B"]}).needles() == {b"rule a", b"rule b"}
    both = parse({"all": [{"rule": ["Rule A", "Rule B"]}, {"phrase": "abc def"}]})
    assert both.needles() == {b"abc def"}
    assert parse({"any": [{"rule": "Rule A"}, {"not": {"rule": "x"}}]}).needles() is None
    assert parse({"field": {"name": "user", "regex": "root"}}).needles() is None
    assert parse({"resource": {"key": "k", "equals": "value"}}).needles() is None
    assert parse({"rule": "Execution from /dev/shm"}).needles() == {b"execution from "}
    assert parse({"field": {"name": "user", "equals": "1000"}}).needles() is None


# A small vocabulary with the characters that JSON encoders escape, non-ASCII
# text, case variants and values a typed attribute would hold in binary.
WORDS = ["Shell", "shell", "a/b", 'q"t', "café", "root", "0", "1000", "true", "Ab<c>", "x y"]
PRIORITIES = ["Emergency", "Critical", "Error", "Warning", "Notice", "Info", "Debug"]
word = st.sampled_from(WORDS)
leaf = st.one_of(
    word.map(lambda w: {"phrase": w}),
    st.lists(word, min_size=1, max_size=2).map(lambda ws: {"rule": ws}),
    st.sampled_from(PRIORITIES).map(lambda p: {"priority_at_least": p}),
    st.lists(word, min_size=1, max_size=2).map(lambda ws: {"tags_any": ws}),
    st.lists(word, min_size=1, max_size=2).map(lambda ws: {"tags_all": ws}),
    st.tuples(
        st.sampled_from(["user", "namespace"]), st.sampled_from(["equals", "contains"]), word
    ).map(lambda t: {"field": {"name": t[0], t[1]: t[2]}}),
    st.tuples(st.sampled_from(["user", "namespace"]), st.lists(word, min_size=1, max_size=2)).map(
        lambda t: {"field": {"name": t[0], "in": t[1]}}
    ),
)
conditions = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"any": c}),
        inner.map(lambda c: {"not": c}),
    ),
    max_leaves=6,
)


@st.composite
def records(draw: st.DrawFn) -> LogRecord:
    """A Falco alert record in one of the shapes the collector delivers."""
    priority = draw(st.sampled_from(PRIORITIES))
    text = f"10:00:00.000000000: {priority} {' '.join(draw(st.lists(word, max_size=4)))}"
    rule = " ".join(draw(st.lists(word, min_size=1, max_size=2)))
    tags = draw(st.lists(word, max_size=3))
    fields = {"user.name": draw(word), "k8s.ns.name": draw(word)}
    alert = {"output": text, "rule": rule, "priority": text.split()[1], "tags": tags}
    shape = draw(st.sampled_from(["json-ascii", "json-utf8", "attributes"]))
    record = LogRecord()
    if shape == "attributes":
        record.body.string_value = text
        for key, value in {"rule": rule, "priority": alert["priority"], **fields}.items():
            slot = record.attributes.add(key=key).value
            if value.isdigit():
                slot.int_value = int(value)
            elif value == "true":
                slot.bool_value = True
            else:
                slot.string_value = value
        return record
    document = {**alert, "output_fields": fields}
    record.body.string_value = json.dumps(document, ensure_ascii=shape == "json-ascii")
    return record


@settings(max_examples=400, deadline=None)
@given(spec=conditions, record=records())
def test_prefilter_never_rejects_a_record_the_condition_matches(
    spec: object, record: LogRecord
) -> None:
    """Whenever a condition matches a record, the byte prefilter lets that record through."""
    condition = parse(spec)
    tagger = Tagger(catalog_of(detection(condition)))

    found = read_alert(to_python(record.body), kvlist_to_dict(record.attributes))

    if found is not None and condition.matches(found, {}):
        assert tagger.may_match(record.SerializeToString())
