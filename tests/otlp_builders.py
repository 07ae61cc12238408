"""Small builders of OTLP log requests for tests."""

from __future__ import annotations

import json
from collections.abc import Mapping

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from falco_risk.otlp_values import kvlist_to_dict, to_python

SPLUNK_RESOURCE = {
    "com.splunk.sourcetype": "kube:container:falco",
    "com.splunk.source": "/var/log/pods/falco_falco-x1_u1/falco/0.log",
    "com.splunk.index": "main",
    "host.name": "node-1",
}


def falco_json(output: str, rule: str = "Terminal shell in container", **fields: object) -> str:
    """A Falco JSON alert line with the given output and output_fields."""
    alert = {
        "hostname": "falco-abcde",
        "output": output,
        "priority": "Notice",
        "rule": rule,
        "source": "syscall",
        "tags": ["container", "shell"],
        "time": "2025-03-01T10:00:00.000000000Z",
        "output_fields": fields,
    }
    return json.dumps(alert)


def request_with(
    *bodies: str, resource: Mapping[str, str] = SPLUNK_RESOURCE
) -> ExportLogsServiceRequest:
    """One resource, one scope, one record per body, with ids and timestamps set."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add(schema_url="https://example.test/schema")
    for key, value in resource.items():
        resource_logs.resource.attributes.add(key=key).value.string_value = value
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "filelog"
    for index, body in enumerate(bodies):
        record = scope_logs.log_records.add(
            time_unix_nano=1_700_000_000_000_000_000 + index,
            observed_time_unix_nano=1_700_000_000_500_000_000 + index,
            severity_number=9,
            severity_text="INFO",
            trace_id=bytes(range(16)),
            span_id=bytes(range(8)),
            flags=1,
        )
        record.body.string_value = body
        record.attributes.add(key="log.iostream").value.string_value = "stdout"
    return request


def records(request: ExportLogsServiceRequest) -> list[LogRecord]:
    """Every log record of a request, in order."""
    return [
        record
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]


def attributes(record: LogRecord) -> dict[str, object]:
    """A record's attributes as Python values."""
    return kvlist_to_dict(record.attributes)


def body(record: LogRecord) -> object:
    return to_python(record.body)
