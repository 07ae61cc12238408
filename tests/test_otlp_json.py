"""Tests for OTLP's JSON encoding."""

import json

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from falco_risk import otlp_json
from otlp_builders import records, request_with

DOCUMENT = {
    "resourceLogs": [
        {
            "resource": {"attributes": [{"key": "host.name", "value": {"stringValue": "n1"}}]},
            "scopeLogs": [
                {
                    "scope": {"name": "s"},
                    "logRecords": [
                        {
                            "timeUnixNano": "1700000000000000000",
                            "observedTimeUnixNano": 1700000000000000001,
                            "severityNumber": 9,
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "body": {"stringValue": "hello"},
                            "someFutureField": {"x": 1},
                        }
                    ],
                }
            ],
        }
    ]
}


def test_parse_reads_hex_ids_int64_strings_and_ignores_unknown_fields() -> None:
    """OTLP JSON's hex ids, string or number int64 and unknown keys are all accepted."""
    request = otlp_json.parse(json.dumps(DOCUMENT), ExportLogsServiceRequest())

    (record,) = records(request)
    assert record.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert record.span_id.hex() == "eee19b7ec3c1b174"
    assert record.time_unix_nano == 1700000000000000000
    assert record.observed_time_unix_nano == 1700000000000000001
    assert record.severity_number == 9
    assert record.body.string_value == "hello"


def test_dumps_writes_hex_ids_and_integer_enums() -> None:
    """Output uses lowerCamelCase, hex ids and integer severities, and parses back equal."""
    request = request_with("hello")

    line = otlp_json.dumps(request)

    document = json.loads(line)
    record = document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert record["traceId"] == bytes(range(16)).hex()
    assert record["spanId"] == bytes(range(8)).hex()
    assert record["severityNumber"] == 9
    assert otlp_json.parse(line, ExportLogsServiceRequest()) == request


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"resourceLogs": "nope"}',
        '{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}',
        '{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": {"a": 1}}]}]}]}',
    ],
)
def test_parse_rejects_what_is_not_otlp_json(text: str) -> None:
    """Anything that is not an OTLP JSON request raises OtlpJsonError."""
    with pytest.raises(otlp_json.OtlpJsonError):
        otlp_json.parse(text, ExportLogsServiceRequest())
