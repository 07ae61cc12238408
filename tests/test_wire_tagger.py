"""Tests for tagging serialized requests on the wire, against decoding as the reference."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from falco_risk import wire_tagger
from falco_risk.catalog import Catalog, load_catalog
from falco_risk.match import Phrase
from falco_risk.tagger import Tagger, TagTally
from falco_risk.wire import WireError, framed
from falco_risk.wire_tagger import WireTagger
from otlp_builders import falco_json, request_with
from support.alerts import (
    SHELL_PHRASE,
    falco_resource,
    k8s_api_alert,
    log_record,
    sensitive_file_alert,
    shell_alert,
)
from support.otlp import key_values, to_any_value
from test_tagger import SHELL_FIELDS, SHELL_OUTPUT, two_detection_catalog

CATALOG = load_catalog()


def _shell_attributes_record() -> LogRecord:
    """falcosidekick's OTLP shape: the output text as body, the alert keys as attributes."""
    alert = shell_alert("0123456789ab")
    attributes = {
        "rule": alert.rule,
        "priority": alert.priority,
        "source": "syscall",
        "tags": ",".join(alert.tags),
        **{name: value for name, value in alert.fields.items() if value is not None},
    }
    return log_record(alert.text(), attributes=attributes)


def _already_tagged_record() -> LogRecord:
    """A shell alert that already carries some of the keys tagging writes, one twice."""
    record = log_record(shell_alert("0123456789ac").json())
    record.attributes.extend(
        [
            KeyValue(key="risk_score", value=to_any_value("5")),
            KeyValue(key="user", value=to_any_value("someone")),
            KeyValue(key="risk_score", value=to_any_value(7)),
        ]
    )
    return record


def _map_body_record() -> LogRecord:
    """The alert JSON parsed by the collector into a map body."""
    return LogRecord(body=to_any_value(json.loads(shell_alert("0123456789ad").json())))


def _unicode_record() -> LogRecord:
    """Values outside ASCII and longer than one length byte."""
    alert = shell_alert("0123456789ae", pod="wëb-" + "x" * 300, namespace="prod→eu")
    return log_record(alert.json())


def _framing_bytes_record() -> LogRecord:
    """A shell alert whose other fields are full of 0x12, the byte that starts a record."""
    record = log_record(shell_alert("0123456789af").json())
    record.time_unix_nano = 0x1212121212121212
    record.severity_number = 0x12
    record.attributes.add(key="\x12", value=to_any_value(b"\x12\x12" * 200))
    return record


# One of each shape the data path meets, named for failure messages.
RECORDS: dict[str, LogRecord] = {
    "shell json": log_record(shell_alert("0123456789a0").json()),
    "shell text": log_record(shell_alert("0123456789a1").text()),
    "shell cri line": log_record(shell_alert("0123456789a2").cri_line()),
    "shell upper case": log_record(
        shell_alert("0123456789a3").json().replace(SHELL_PHRASE, SHELL_PHRASE.upper())
    ),
    "shell attributes": _shell_attributes_record(),
    "shell map body": _map_body_record(),
    "shell already tagged": _already_tagged_record(),
    "shell unicode": _unicode_record(),
    "shell no attributes": LogRecord(body=to_any_value(shell_alert("0123456789a4").json())),
    "shell among framing bytes": _framing_bytes_record(),
    "phrase after framing bytes": LogRecord(
        body=to_any_value(b"\x12\x7f\x12" + SHELL_PHRASE.encode())
    ),
    "phrase after many false starts": LogRecord(
        body=to_any_value(b"\x12\x80\x08" * 100 + SHELL_PHRASE.encode() + b"." * 1500)
    ),
    "shell truncated": log_record(shell_alert("0123456789a5").json()[:-60]),
    "shell internal": log_record(
        json.dumps(
            {
                "output": f"Falco internal: {SHELL_PHRASE}",
                "priority": "Debug",
                "rule": "Falco internal: hot restart",
                "source": "internal",
            }
        )
    ),
    "sensitive file": log_record(sensitive_file_alert("0123456789b0").json()),
    "k8s api": log_record(k8s_api_alert("0123456789b1").json()),
    "plain log": log_record("GET /healthz 200 2ms"),
    "phrase in plain log": log_record(f"someone typed: {SHELL_PHRASE.lower()} (not Falco)"),
    "phrase in bytes body": LogRecord(body=to_any_value(SHELL_PHRASE.encode())),
    "empty record": LogRecord(),
}
# The shapes the seed detection tags; the others pass untagged.
TAGGED = {
    "shell json",
    "shell text",
    "shell cri line",
    "shell upper case",
    "shell attributes",
    "shell map body",
    "shell already tagged",
    "shell unicode",
    "shell no attributes",
    "shell among framing bytes",
}


def request_of(*groups: list[list[str]]) -> ExportLogsServiceRequest:
    """One ResourceLogs per group, one ScopeLogs per inner list, records by name."""
    request = ExportLogsServiceRequest()
    for index, scopes in enumerate(groups):
        resource = Resource(attributes=key_values(falco_resource(node=f"node-{index}")))
        resource_logs = ResourceLogs(resource=resource, schema_url="https://example.test/r")
        for names in scopes:
            scope_logs = ScopeLogs(schema_url="https://example.test/s")
            scope_logs.scope.name = "filelog"
            for name in names:
                scope_logs.log_records.append(RECORDS[name])
            resource_logs.scope_logs.append(scope_logs)
        request.resource_logs.append(resource_logs)
    return request


def reference(raw: bytes) -> tuple[bytes, TagTally]:
    """Decode, tag with the decoded path, encode: what the wire path must equal."""
    request = ExportLogsServiceRequest.FromString(raw)
    tally = Tagger(CATALOG).tag(request)
    return request.SerializeToString(), tally


def wire(raw: bytes) -> tuple[bytes, TagTally] | None:
    return WireTagger(Tagger(CATALOG)).tag(raw)


def assert_same_as_reference(raw: bytes, result: tuple[bytes, TagTally] | None) -> None:
    """The wire result is the reference's bytes and counts (None: the reference changed nothing)."""
    expected, expected_tally = reference(raw)
    if result is None:
        assert expected == raw
        assert not expected_tally.tagged
        assert not expected_tally.malformed
        return
    payload, tally = result
    assert payload == expected
    assert (tally.records, tally.tagged, tally.malformed) == (
        expected_tally.records,
        expected_tally.tagged,
        expected_tally.malformed,
    )


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_wire_tagger_matches_decoding_on_every_record_shape(name: str) -> None:
    """Each record shape, alone in a request, comes out byte for byte as decoding makes it."""
    raw = request_of([[name]]).SerializeToString()

    result = wire(raw)

    assert_same_as_reference(raw, result)
    tagged = result is not None and bool(result[1].tagged)
    assert tagged == (name in TAGGED)


def test_wire_tagger_matches_decoding_on_a_mixed_request() -> None:
    """A request with every shape across resources and scopes equals the decoded result."""
    names = sorted(RECORDS)
    request = request_of([names, names[::-1]], [names[3:], []], [[names[0]]])
    raw = request.SerializeToString()

    result = wire(raw)

    assert_same_as_reference(raw, result)
    assert result is not None
    tagged = [*names, *names, *names[3:], names[0]]
    assert sum(result[1].tagged.values()) == sum(name in TAGGED for name in tagged)
    assert result[1].records == len(tagged)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.lists(st.sampled_from(sorted(RECORDS)), max_size=6), min_size=1, max_size=3),
        min_size=1,
        max_size=3,
    )
)
def test_wire_tagger_matches_decoding_on_any_arrangement(groups: list[list[list[str]]]) -> None:
    """Whatever the records and their grouping, the bytes and counts equal decoding's."""
    raw = request_of(*groups).SerializeToString()

    result = wire(raw)

    assert_same_as_reference(raw, result)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.sampled_from(sorted(RECORDS)), min_size=1, max_size=12))
def test_wire_tagger_walking_record_by_record_gives_the_same(names: list[str]) -> None:
    """The record-by-record walk, used when guesses at record starts fail, agrees too."""
    raw = request_of([names, names]).SerializeToString()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wire_tagger, "_locate", lambda *args: False)
        result = wire(raw)

    assert_same_as_reference(raw, result)


def test_wire_tagger_ignores_needles_outside_records() -> None:
    """The phrase in a resource attribute or a scope name makes no record a candidate."""
    request = request_of([["plain log", "sensitive file"]])
    request.resource_logs[0].resource.attributes.add(key="note").value.string_value = SHELL_PHRASE
    request.resource_logs[0].scope_logs[0].scope.name = SHELL_PHRASE
    raw = request.SerializeToString()

    result = wire(raw)

    assert result is not None
    payload, tally = result
    assert payload == raw
    assert tally.records == 2
    assert not tally.tagged


def test_wire_tagger_matches_decoding_when_every_record_is_an_alert() -> None:
    """Past the first few dozen hits the search changes method; the result does not."""
    raw = request_of([["shell json", "shell cri line"] * 40]).SerializeToString()

    result = wire(raw)

    assert_same_as_reference(raw, result)
    assert result is not None
    assert sum(result[1].tagged.values()) == 80


def test_wire_tagger_finds_every_needle_of_a_catalog() -> None:
    """Needles that overlap or prefix one another still make every match a candidate."""
    seed = CATALOG.detections[0]
    catalog = Catalog(
        (
            dataclasses.replace(seed, id="a", condition=Phrase("Sensitive file opened")),
            dataclasses.replace(seed, id="b", condition=Phrase("A shell")),
            dataclasses.replace(seed, id="c", condition=Phrase("a shell was spawned")),
            dataclasses.replace(seed, id="d", condition=Phrase("K8s API Server")),
        )
    )
    names = ["shell json", "sensitive file", "k8s api", "plain log", "shell text"] * 10
    raw = request_of([names]).SerializeToString()
    expected_request = ExportLogsServiceRequest.FromString(raw)
    expected_tally = Tagger(catalog).tag(expected_request)

    result = WireTagger(Tagger(catalog)).tag(raw)

    assert result is not None
    assert result[0] == expected_request.SerializeToString()
    assert result[1].tagged == expected_tally.tagged == {"a": 10, "b": 20, "d": 10}


def test_wire_tagger_leaves_requests_without_needles_alone() -> None:
    """No needle anywhere: no result, so the caller forwards the bytes as received."""
    raw = request_of([["plain log", "sensitive file", "k8s api"]]).SerializeToString()

    assert wire(raw) is None


def test_wire_tagger_keeps_field_order_it_received() -> None:
    """A record written in unusual field order decodes to the same message as the reference."""
    record = RECORDS["shell json"]
    fields = [
        LogRecord(observed_time_unix_nano=record.observed_time_unix_nano),
        LogRecord(attributes=record.attributes),
        LogRecord(body=record.body),
        LogRecord(time_unix_nano=record.time_unix_nano),
    ]
    payload = b"".join(part.SerializeToString() for part in fields)
    raw = framed(b"\x0a", framed(b"\x12", framed(b"\x12", payload)))

    result = wire(raw)

    assert result is not None
    expected, _ = reference(raw)
    assert result[0] != expected
    decoded = ExportLogsServiceRequest.FromString(result[0])
    assert decoded == ExportLogsServiceRequest.FromString(expected)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[:-10], id="truncated"),
        pytest.param(lambda raw: raw[:1] + b"\xff" * 10 + raw[2:], id="overlong-varint"),
        pytest.param(lambda raw: raw + b"\x0f", id="group-wire-type"),
    ],
)
def test_wire_tagger_refuses_framing_it_cannot_follow(damage: object) -> None:
    """Broken framing raises WireError, so the caller decodes and reports the request."""
    raw = request_of([["shell json", "plain log"]]).SerializeToString()

    with pytest.raises(WireError):
        wire(damage(raw))  # type: ignore[operator]


def test_wire_tagger_refuses_a_candidate_that_is_not_utf8() -> None:
    """A candidate body that is not UTF-8 is left to decoding, which refuses it."""
    raw = request_of([["phrase in plain log"]]).SerializeToString()
    broken = raw.replace(b"(not Falco)", b"(not \xffalco)")

    with pytest.raises(WireError):
        wire(broken)


def test_wire_tagger_matches_decoding_with_multi_match_and_suppression(tmp_path: Path) -> None:
    """Two matching detections and a suppression give the same bytes and counts on both paths."""
    catalog = two_detection_catalog(tmp_path)
    suppressed = falco_json(SHELL_OUTPUT, **{**SHELL_FIELDS, "k8s.ns.name": "ci"})
    both = falco_json(SHELL_OUTPUT, **SHELL_FIELDS)
    raw = request_with(suppressed, both, "plain").SerializeToString()
    request = ExportLogsServiceRequest.FromString(raw)
    expected_tally = Tagger(catalog).tag(request)

    result = WireTagger(Tagger(catalog)).tag(raw)

    assert result is not None
    payload, tally = result
    assert payload == request.SerializeToString()
    assert (tally.tagged, tally.suppressed, tally.counts) == (
        expected_tally.tagged,
        expected_tally.suppressed,
        expected_tally.counts,
    )
    assert tally.suppressed == {("falco-terminal-shell", "ci-namespace"): 1}


def test_wire_tagger_leaves_a_record_untagged_when_the_tag_would_not_fit() -> None:
    """The size bound applies on the wire as in the decoded path."""
    big = falco_json(SHELL_OUTPUT, **{**SHELL_FIELDS, "proc.cmdline": "x" * 3000})
    raw = request_with(big).SerializeToString()
    record_size = len(ExportLogsServiceRequest.FromString(raw).SerializeToString())
    limit = record_size + 200
    request = ExportLogsServiceRequest.FromString(raw)
    expected_tally = Tagger(CATALOG, max_record_size=limit).tag(request)

    result = WireTagger(Tagger(CATALOG, max_record_size=limit)).tag(raw)

    assert expected_tally.oversize == 1
    assert result is not None
    assert result[1].oversize == 1
    assert result[0] == raw


def test_wire_tagger_refuses_a_candidate_whose_attributes_do_not_decode() -> None:
    """Attributes the reader needs but that are not UTF-8 send the request to decoding too."""
    record = log_record(f"no alert here: {SHELL_PHRASE}", attributes={"note": "caf\u00e9"})
    raw = request_of([[]]).SerializeToString()
    request = ExportLogsServiceRequest.FromString(raw)
    request.resource_logs[0].scope_logs[0].log_records.append(record)
    broken = request.SerializeToString().replace("caf\u00e9".encode(), b"caf\xff\xfe")

    with pytest.raises(WireError):
        wire(broken)
