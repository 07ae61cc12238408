"""Plain Python views of OTLP log requests, and the way back."""

from collections.abc import Iterable, Mapping
from typing import NamedTuple, TypeAlias

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

Value: TypeAlias = "str | bool | int | float | bytes | list[Value] | dict[str, Value] | None"


class Captured(NamedTuple):
    """One log record with the resource and scope it travelled under."""

    resource: dict[str, Value]
    scope: InstrumentationScope
    record: LogRecord

    @property
    def attributes(self) -> dict[str, Value]:
        """The record's attributes as a dict."""
        return attributes(self.record.attributes)

    @property
    def body(self) -> Value:
        """The record's body as a Python value."""
        return from_any_value(self.record.body)


def from_any_value(value: AnyValue) -> Value:
    """Turn an OTLP AnyValue into the matching Python value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [from_any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    python_value: Value = getattr(value, kind)
    return python_value


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Value]:
    """Turn OTLP key-value pairs into a dict; a repeated key keeps its last value."""
    return {pair.key: from_any_value(pair.value) for pair in pairs}


def to_any_value(value: Value) -> AnyValue:
    """Turn a Python value into an OTLP AnyValue."""
    # bool before int: True is an int too.
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[to_any_value(v) for v in value]))
    return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))


def key_values(mapping: Mapping[str, Value]) -> list[KeyValue]:
    """Turn a dict into OTLP key-value pairs, in the dict's order."""
    return [KeyValue(key=key, value=to_any_value(value)) for key, value in mapping.items()]


def flatten(requests: Iterable[ExportLogsServiceRequest]) -> list[Captured]:
    """List every log record of `requests` in order, with its resource and scope."""
    return [
        Captured(attributes(resource_logs.resource.attributes), scope_logs.scope, record)
        for request in requests
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]


def record_count(request: ExportLogsServiceRequest) -> int:
    """Count the log records in one request."""
    return sum(
        len(scope_logs.log_records)
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
    )
