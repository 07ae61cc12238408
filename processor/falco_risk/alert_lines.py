"""Read lines of Falco alerts for the ``tag`` and ``explain`` commands.

Each non-empty line is one of: an OTLP JSON export request (an object with
``resourceLogs``), which is read as it is; or anything else (a Falco JSON
alert, a Falco text line, any log line), which becomes the string body of one
log record, as the collector would deliver it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from falco_risk import otlp_json


def requests_from_lines(lines: Iterable[str]) -> Iterator[tuple[int, ExportLogsServiceRequest]]:
    """One request per non-empty line, with the line's number."""
    for number, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        yield number, _request(text)


def _request(text: str) -> ExportLogsServiceRequest:
    if text.lstrip().startswith("{") and _is_otlp(text):
        try:
            return otlp_json.parse(text, ExportLogsServiceRequest())
        except otlp_json.OtlpJsonError:
            pass  # then it is passed on as a plain line
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = text
    return request


def _is_otlp(text: str) -> bool:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(document, dict) and (
        "resourceLogs" in document or "resource_logs" in document
    )
