"""Split an export request into several that each fit the next hop's size limit."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs

# Room for a field's tag and length prefix (1 + up to 5 bytes of varint).
_FRAMING = 6


def split_request(request: ExportLogsServiceRequest, limit: int) -> list[bytes]:
    """Serialized requests of at most ``limit`` bytes each, records in their order.

    Resources and scopes are repeated in each piece that carries their records.
    A single record larger than the limit travels alone in an oversized piece;
    the next hop's answer then says what happens to it.
    """
    if request.ByteSize() <= limit:
        return [request.SerializeToString()]

    pieces: list[bytes] = []
    current = ExportLogsServiceRequest()
    size = 0
    for resource_logs in request.resource_logs:
        resource_cost = _header_size(resource_logs)
        for scope_logs in resource_logs.scope_logs:
            scope_cost = _header_size(scope_logs)
            target: ScopeLogs | None = None
            for record in scope_logs.log_records:
                cost = record.ByteSize() + _FRAMING
                if target is None:
                    cost += scope_cost + resource_cost
                if size + cost > limit and size > 0:
                    pieces.append(current.SerializeToString())
                    current, size, target = ExportLogsServiceRequest(), 0, None
                    cost = record.ByteSize() + _FRAMING + scope_cost + resource_cost
                if target is None:
                    target = _open_scope(current, resource_logs, scope_logs)
                target.log_records.append(record)
                size += cost
    if size > 0:
        pieces.append(current.SerializeToString())
    return pieces


def _header_size(message: ResourceLogs | ScopeLogs) -> int:
    """Bytes a resource or scope header costs in each piece that repeats it."""
    if isinstance(message, ResourceLogs):
        size = message.resource.ByteSize()
    else:
        size = message.scope.ByteSize()
    return size + len(message.schema_url.encode()) + 3 * _FRAMING


def _open_scope(
    request: ExportLogsServiceRequest, resource_logs: ResourceLogs, scope_logs: ScopeLogs
) -> ScopeLogs:
    """The piece's ScopeLogs for this source scope, adding resource and scope headers as needed."""
    last = request.resource_logs[-1] if request.resource_logs else None
    if (
        last is None
        or last.resource != resource_logs.resource
        or last.schema_url != resource_logs.schema_url
    ):
        last = request.resource_logs.add(schema_url=resource_logs.schema_url)
        last.resource.CopyFrom(resource_logs.resource)
    target = last.scope_logs.add(schema_url=scope_logs.schema_url)
    target.scope.CopyFrom(scope_logs.scope)
    return target
