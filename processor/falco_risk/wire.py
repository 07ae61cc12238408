"""The protobuf wire format, as far as the data path reads and writes it by hand.

A request is mostly records that pass through untouched. Reading its framing
(tags and lengths) finds the few records to tag without decoding the rest;
writing the added attributes as bytes tags a record without building
messages. Everything here works on bytes and offsets. Framing that cannot be
read raises WireError, and the caller decodes the request the ordinary way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from falco_risk.otlp_values import AttributeValue

# Wire types (the low three bits of a tag).
VARINT = 0
FIXED64 = 1
LEN = 2
FIXED32 = 5

_MAX_VARINT_BYTES = 10


class WireError(ValueError):
    """Bytes that are not protobuf framing this module can follow."""


@dataclass(frozen=True, slots=True)
class Span:
    """One length-delimited field: where its tag starts and where its payload lies."""

    header: int
    start: int
    end: int


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = 0
    shift = 0
    for index in range(pos, min(pos + _MAX_VARINT_BYTES, len(data))):
        byte = data[index]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, index + 1
        shift += 7
    raise WireError(f"truncated or overlong varint at offset {pos}")


def skip(data: bytes, pos: int, wire_type: int, end: int) -> int:
    """The position after a field value of ``wire_type`` that starts at ``pos``."""
    if wire_type == VARINT:
        return read_varint(data, pos)[1]
    if wire_type == LEN:
        size, pos = read_varint(data, pos)
        pos += size
    elif wire_type == FIXED64:
        pos += 8
    elif wire_type == FIXED32:
        pos += 4
    else:
        # Groups (3, 4) are not part of OTLP; 6 and 7 are not wire types.
        raise WireError(f"unsupported wire type {wire_type}")
    if pos > end:
        raise WireError("field runs past the end of its message")
    return pos


def fields(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, header offset, value offset) of each field in a message."""
    found = []
    pos = start
    while pos < end:
        header = pos
        tag, pos = read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireError(f"field number 0 at offset {header}")
        found.append((number, wire_type, header, pos))
        pos = skip(data, pos, wire_type, end)
    if pos != end:
        raise WireError("message runs past its end")
    return found


def length_delimited(data: bytes, value_start: int) -> Span:
    """The payload span of a length-delimited value whose length prefix is at ``value_start``."""
    size, start = read_varint(data, value_start)
    return Span(value_start, start, start + size)


def _records_skeleton() -> Any:
    """A message with ScopeLogs' field 2 (log_records) as opaque bytes and nothing else.

    Parsing a run of ScopeLogs fields with it follows the same framing a
    walk by hand would, in C; the other fields are kept as unknown fields.
    """
    file = descriptor_pb2.FileDescriptorProto(
        name="falco_risk_wire_skeleton.proto", package="falco_risk.wire", syntax="proto3"
    )
    file.message_type.add(name="Records").field.add(
        name="log_records",
        number=2,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("falco_risk.wire.Records"))


_Records = _records_skeleton()


def count_records(view: memoryview, start: int, end: int) -> int | None:
    """Log records in the ScopeLogs fields at ``start:end``; None unless they end at ``end``.

    From a field boundary, the parse succeeds only if ``end`` is a field
    boundary too, which makes it an exact test of a guessed record start.
    """
    if start == end:
        return 0
    try:
        return len(_Records.FromString(view[start:end]).log_records)
    except DecodeError:
        return None


def encode_varint(value: int) -> bytes:
    """``value`` (not negative) as a varint."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def framed(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + encode_varint(len(payload)) + payload


# Tags of the fields written here: KeyValue.key (1) and .value (2),
# AnyValue.string_value (1) and .array_value (5), ArrayValue.values (1),
# LogRecord.attributes (6).
_KEY = b"\x0a"
_VALUE = b"\x12"
_STRING = b"\x0a"
_ARRAY = b"\x2a"
_ARRAY_ITEM = b"\x0a"
ATTRIBUTE_TAG = b"\x32"


class AttributeEncoder:
    """Encodes attributes as LogRecord.attributes fields, remembering recent encodings.

    The attributes a detection adds are mostly the same from one match to the
    next (rule identity, ATT&CK, risk score): rendered values are shared,
    read-only objects, so the last encoding of each key is kept and reused
    when the value is the same object or an equal one. Safe to share between
    threads: an entry is replaced as a whole.
    """

    def __init__(self) -> None:
        # key -> (value as given, a copy of it, its encoding)
        self._last: dict[str, tuple[object, object, bytes]] = {}
        # key -> the bytes of a KeyValue up to its value's length prefix
        self._prefixes: dict[str, bytes] = {}

    def encode(self, values: Mapping[str, AttributeValue]) -> bytes:
        """The attributes as consecutive serialized ``attributes`` fields, in order.

        Raises:
            UnicodeEncodeError: a value is not valid text (a lone surrogate).
            ValueError: a value is an empty list, which protobuf would write
                differently (no value at all).
        """
        last = self._last
        parts = []
        for key, value in values.items():
            entry = last.get(key)
            if entry is not None and (entry[0] is value or entry[1] == value):
                parts.append(entry[2])
                continue
            if isinstance(value, str):
                encoded = self._string_pair(key, value)
                copy: object = value
            else:
                encoded = framed(ATTRIBUTE_TAG, _key_value(key, value))
                copy = list(value)
            last[key] = (value, copy, encoded)
            parts.append(encoded)
        return b"".join(parts)

    def _string_pair(self, key: str, value: str) -> bytes:
        """One string attribute; the common short case without the general framing."""
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = framed(_KEY, key.encode()) + _VALUE
            self._prefixes[key] = prefix
        text = value.encode()
        size = len(text)
        pair_size = len(prefix) + size + 3
        if size < 126 and pair_size < 128:
            # Every length fits one byte: tag, sizes and text in one go.
            return b"%b%c%b%c\x0a%c%b" % (ATTRIBUTE_TAG, pair_size, prefix, size + 2, size, text)
        # The value's length prefix follows the prefix's tag: frame with no tag.
        return framed(ATTRIBUTE_TAG, prefix + framed(b"", framed(_STRING, text)))


def _key_value(key: str, value: AttributeValue) -> bytes:
    if isinstance(value, str):
        any_value = framed(_STRING, value.encode())
    else:
        if not value:
            raise ValueError(f"attribute {key!r} is an empty list")
        items = b"".join(framed(_ARRAY_ITEM, framed(_STRING, item.encode())) for item in value)
        any_value = framed(_ARRAY, items)
    return framed(_KEY, key.encode()) + framed(_VALUE, any_value)
