"""Count the log records of a serialized request without decoding the records.

Requests with no candidate record travel as the bytes received. Counting their
records must not cost a full decode, so the bytes are parsed against a skeleton
of ExportLogsServiceRequest that keeps each log record as opaque bytes: the
protobuf runtime then only walks the framing, in C.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

_PACKAGE = "falco_risk.skeleton"
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
_BYTES = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE


def _skeleton() -> Any:
    """The skeleton request class; field numbers are those of the OTLP logs protos."""
    file = descriptor_pb2.FileDescriptorProto(
        name="falco_risk_skeleton.proto", package=_PACKAGE, syntax="proto3"
    )
    shapes = (
        ("ScopeLogs", "log_records", 2, _BYTES, ""),
        ("ResourceLogs", "scope_logs", 2, _MESSAGE, f".{_PACKAGE}.ScopeLogs"),
        ("Request", "resource_logs", 1, _MESSAGE, f".{_PACKAGE}.ResourceLogs"),
    )
    for message, field, number, kind, type_name in shapes:
        spec = file.message_type.add(name=message).field.add(
            name=field, number=number, label=_REPEATED, type=kind
        )
        if type_name:
            spec.type_name = type_name

    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Request"))


_Request = _skeleton()


def count_records(raw: bytes) -> int | None:
    """The number of log records in a serialized request, or None when it cannot be parsed."""
    try:
        request = _Request.FromString(raw)
    except DecodeError:
        return None
    return sum(
        len(scope_logs.log_records)
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
    )
