"""Conversions between OTLP ``AnyValue`` / ``KeyValue`` messages and Python values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

# A hostile request can nest AnyValues thousands deep; reading stops here and
# the deeper part is left out of the Python view (the record itself is untouched).
MAX_DEPTH = 32

AttributeValue = str | Sequence[str]


def to_python(value: AnyValue, depth: int = 0) -> object:
    """The Python view of an ``AnyValue``: str, int, float, bool, bytes, list, dict or None."""
    kind = value.WhichOneof("value")
    if kind is None or depth > MAX_DEPTH:
        return None
    if kind == "kvlist_value":
        return kvlist_to_dict(value.kvlist_value.values, depth + 1)
    if kind == "array_value":
        return [to_python(v, depth + 1) for v in value.array_value.values]
    return getattr(value, kind)


def kvlist_to_dict(pairs: Iterable[KeyValue], depth: int = 0) -> dict[str, object]:
    """Key/value pairs as a dict; the first of repeated keys wins, as collectors read them."""
    result: dict[str, object] = {}
    for pair in pairs:
        if pair.key not in result:
            result[pair.key] = to_python(pair.value, depth)
    return result


def set_attributes(target: Any, values: Mapping[str, AttributeValue]) -> None:
    """Replace or add string (or string array) attributes on a message with ``attributes``.

    A key already present is replaced in place, keeping its position; any
    repeats of it are removed so that each key appears once.
    """
    if not values:
        return
    attributes = target.attributes
    pending = dict(values)
    seen: set[str] = set()
    index = 0
    while index < len(attributes):
        key = attributes[index].key
        if key in seen:
            del attributes[index]
            continue
        if key in pending:
            _assign(attributes[index].value, pending.pop(key))
            seen.add(key)
        index += 1

    for key, value in pending.items():
        _assign(attributes.add(key=key).value, value)


def _assign(slot: AnyValue, value: AttributeValue) -> None:
    if isinstance(value, str):
        slot.string_value = value
        return
    slot.ClearField("value")
    array = slot.array_value
    for item in value:
        array.values.add(string_value=item)
