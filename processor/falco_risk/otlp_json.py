"""OTLP's JSON encoding of log requests and responses, to and from protobuf.

OTLP JSON is the protobuf JSON mapping with three differences that matter here:
trace and span ids are hex strings rather than base64, enums are integers, and
unknown fields must be ignored. Keys are lowerCamelCase; the protobuf parser
also accepts the original snake_case names.
"""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

M = TypeVar("M", bound=Message)

_ID_KEYS = ("traceId", "spanId", "trace_id", "span_id")


class OtlpJsonError(ValueError):
    """A body is not a valid OTLP JSON message."""


def parse(data: bytes | str, message: M) -> M:
    """Fill ``message`` from OTLP JSON; raises OtlpJsonError when it is not one."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise OtlpJsonError(f"body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise OtlpJsonError("body is not a JSON object")

    try:
        if isinstance(message, ExportLogsServiceRequest):
            _ids_to_base64(document)
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise OtlpJsonError(f"body is not OTLP JSON: {exc}") from exc
    return message


def dumps(message: Message) -> str:
    """One line of OTLP JSON for a protobuf message."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    if isinstance(message, ExportLogsServiceRequest):
        _ids_to_hex(document)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _records(document: dict[str, Any]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for resource_logs in _list(document, "resourceLogs", "resource_logs"):
        for scope_logs in _list(resource_logs, "scopeLogs", "scope_logs"):
            records.extend(
                r for r in _list(scope_logs, "logRecords", "log_records") if isinstance(r, dict)
            )
    return records


def _list(node: object, *keys: str) -> list[Any]:
    if not isinstance(node, dict):
        return []
    for key in keys:
        value = node.get(key)
        if isinstance(value, list):
            return value
    return []


def _ids_to_base64(document: dict[str, Any]) -> None:
    for record in _records(document):
        for key in _ID_KEYS:
            value = record.get(key)
            if isinstance(value, str):
                try:
                    record[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError as exc:
                    raise OtlpJsonError(f"{key} {value!r} is not a hex string") from exc


def _ids_to_hex(document: dict[str, Any]) -> None:
    for record in _records(document):
        for key in ("traceId", "spanId"):
            if key in record:
                record[key] = base64.b64decode(record[key]).hex()
