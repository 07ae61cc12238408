"""Split an export request into several that each fit the next hop's size limit.

split_request works on a decoded request; split_serialized on its bytes, for
requests tagged on the wire.
"""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs

from falco_risk.wire import (
    LEN,
    Span,
    WireError,
    encode_varint,
    fields,
    length_delimited,
    read_varint,
    skip,
)

# Room for a field's tag and length prefix (1 + up to 5 bytes of varint).
_FRAMING = 6
# Tags: ExportLogsServiceRequest.resource_logs (1); in ResourceLogs and
# ScopeLogs, fields 1 (resource / scope), 2 (children) and 3 (schema_url).
_RESOURCE_LOGS = b"\x0a"
_CHILD = b"\x12"
_CHILD_TAG = 0x12
_FIRST_TAG = 0x0A
_THIRD_TAG = 0x1A


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


def split_serialized(raw: bytes, limit: int) -> list[bytes]:
    """split_request on the serialized request, without decoding any record.

    Sizes are estimated by split_request's own rule and records are cut at
    the same places, so for a request in canonical encoding the pieces are
    the bytes split_request gives.

    Raises:
        WireError: the framing cannot be followed; decode and use split_request.
    """
    if len(raw) <= limit:
        return [raw]
    view = memoryview(raw)
    packer = _Packer(limit)
    for number, wire_type, _, value in fields(raw, 0, len(raw)):
        if number != 1 or wire_type != LEN:
            continue
        resource_logs = length_delimited(raw, value)
        resource = _Header.of(raw, resource_logs.start, resource_logs.end)
        for scope_logs in resource.children:
            scope = _Header.of(raw, scope_logs.start, scope_logs.end)
            for record in scope.children:
                framed = view[record.header : record.end]
                packer.add(resource, scope, framed, record.end - record.start)
    return packer.finish()


class _Header:
    """A ResourceLogs or ScopeLogs: its first and third fields as bytes, its children's spans.

    Field 1 is the resource or scope, field 3 the schema URL, field 2 the
    children (ScopeLogs or LogRecords); other fields are left out of the
    pieces, as split_request leaves them out.
    """

    def __init__(self, first: bytes, third: bytes, cost: int, children: list[Span]) -> None:
        self.first = first
        self.third = third
        self.cost = cost
        self.children = children

    @classmethod
    def of(cls, raw: bytes, start: int, end: int) -> _Header:
        """Read a message's fields; ``cost`` is split_request's estimate of its framing."""
        first = third = b""
        first_size = third_size = 0
        children: list[Span] = []
        pos = start
        while pos < end:
            header = pos
            tag = raw[pos]
            if tag == _CHILD_TAG:
                size = raw[pos + 1]
                if size < 0x80:
                    value = pos + 2
                elif raw[pos + 2] < 0x80:
                    size = (size & 0x7F) | (raw[pos + 2] << 7)
                    value = pos + 3
                else:
                    size, value = read_varint(raw, pos + 1)
                pos = value + size
                children.append(Span(header, value, pos))
                continue
            tag, pos = read_varint(raw, pos)
            if tag in (_FIRST_TAG, _THIRD_TAG):
                size, value = read_varint(raw, pos)
                pos = value + size
                if tag == _FIRST_TAG:
                    first, first_size = raw[header:pos], size
                else:
                    third, third_size = raw[header:pos], size
            else:
                pos = skip(raw, pos, tag & 7, end)
        if pos != end:
            raise WireError("message runs past its end")
        return cls(first, third, first_size + third_size + 3 * _FRAMING, children)


class _Packer:
    """Fills pieces with records in order, as split_request does, without decoding them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: list[bytes] = []
        # The piece being filled: [(resource, [(scope, [record views])])].
        self.groups: list[tuple[_Header, list[tuple[_Header, list[memoryview]]]]] = []
        self.size = 0
        self.scope: _Header | None = None

    def add(self, resource: _Header, scope: _Header, record: memoryview, payload: int) -> None:
        cost = payload + _FRAMING
        if self.scope is not scope:
            cost += scope.cost + resource.cost
        if self.size + cost > self.limit and self.size > 0:
            self._flush()
            cost = payload + _FRAMING + scope.cost + resource.cost
        if self.scope is not scope:
            self._open(resource, scope)
        self.groups[-1][1][-1][1].append(record)
        self.size += cost

    def finish(self) -> list[bytes]:
        if self.size > 0:
            self._flush()
        return self.pieces

    def _open(self, resource: _Header, scope: _Header) -> None:
        """Start the scope in this piece, under the last resource when it is the same one."""
        if not self.groups or not _same(self.groups[-1][0], resource):
            self.groups.append((resource, []))
        self.groups[-1][1].append((scope, []))
        self.scope = scope

    def _flush(self) -> None:
        parts: list[bytes | memoryview] = []
        for resource, scopes in self.groups:
            inner: list[bytes | memoryview] = [resource.first]
            for scope, records in scopes:
                size = len(scope.first) + len(scope.third) + sum(len(r) for r in records)
                inner += [_CHILD + encode_varint(size), scope.first, *records, scope.third]
            inner.append(resource.third)
            size = sum(len(part) for part in inner)
            parts += [_RESOURCE_LOGS + encode_varint(size), *inner]
        self.pieces.append(b"".join(parts))
        self.groups = []
        self.size = 0
        self.scope = None


def _same(first: _Header, second: _Header) -> bool:
    return first is second or (first.first == second.first and first.third == second.third)
