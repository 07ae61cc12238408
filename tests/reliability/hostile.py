"""Hostile OTLP payloads, written at the wire level where protobuf would refuse to build them."""

from __future__ import annotations

import gzip

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

# The seed detection's phrase: payloads carrying it are decoded by falco-risk,
# payloads without it are forwarded undecoded; both paths must hold.
NEEDLE = b"A shell was spawned in a container"


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def request_with_body(any_value: bytes, attributes: bytes = b"") -> bytes:
    """A request with one record (in one scope and resource) whose body is ``any_value``."""
    record = field(5, any_value) + attributes
    return field(1, field(2, field(2, record)))


def nested_body(depth: int, leaf: bytes = NEEDLE) -> bytes:
    """An AnyValue holding arrays ``depth`` levels deep around a string."""
    value = field(1, leaf)
    for _ in range(depth):
        value = field(5, field(1, value))
    return value


def invalid_utf8_body(prefix: bytes = NEEDLE) -> bytes:
    """A request whose body string is not UTF-8."""
    return request_with_body(field(1, prefix + b" \xff\xfe\xc3\x28 end"))


def many_attributes(count: int) -> bytes:
    """A record carrying ``count`` string attributes."""
    attributes = b"".join(
        field(6, field(1, b"k%d" % n) + field(2, field(1, b"v"))) for n in range(count)
    )
    return request_with_body(field(1, NEEDLE), attributes)


def gzip_bomb(size: int) -> bytes:
    """A small gzip body that inflates to ``size`` zero bytes."""
    return gzip.compress(b"\0" * size, compresslevel=9)


def truncated(request: ExportLogsServiceRequest, keep: float) -> bytes:
    raw = request.SerializeToString()
    return raw[: max(1, int(len(raw) * keep)) - 1]
