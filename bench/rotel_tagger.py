"""A rotel-agent logs processor that tags Falco alerts the way falco-risk does.

This is the peer a user would otherwise pick: rotel (Rust) receives and
exports, and this Python processor, run in rotel's embedded interpreter,
applies falco-risk's own catalog, alert reader, matcher and renderer to each
record, so the attributes added are the same. Like falco-risk, it reads a
record only when its text holds one of the catalog's needles (any case);
records whose body is not a string are always read.

rotel calls ``process_logs`` with each ResourceLogs and exports what it
leaves; falco_risk must be importable (rotel-agent is started with
PYTHONPATH set to this checkout's ``processor`` directory and the virtual
environment's site-packages).
"""

from __future__ import annotations

from collections.abc import Mapping

from rotel_sdk.open_telemetry.common.v1 import (  # type: ignore[import-not-found]
    AnyValue,
    ArrayValue,
    KeyValue,
    KeyValueList,
)

from falco_risk.catalog import load_catalog
from falco_risk.enrich import extract, render
from falco_risk.falco import read_alert
from falco_risk.otlp_values import MAX_DEPTH, AttributeValue
from falco_risk.tagger import Tagger

_TAGGER = Tagger(load_catalog())
_NEEDLES = (
    None
    if _TAGGER.catalog.needles is None
    else tuple(needle.decode() for needle in _TAGGER.catalog.needles)
)


def process_logs(resource_logs: object) -> None:
    """Tag the matching records of one ResourceLogs in place."""
    resource: dict[str, object] | None = None
    for scope_logs in resource_logs.scope_logs:  # type: ignore[attr-defined]
        for record in scope_logs.log_records:
            body = _python(record.body)
            if isinstance(body, str) and _NEEDLES is not None:
                lowered = body.lower()
                if not any(needle in lowered for needle in _NEEDLES):
                    continue
            if resource is None:
                resource = _resource(resource_logs)
            _tag(record, body, resource)


def _tag(record: object, body: object, resource: dict[str, object]) -> None:
    attributes = record.attributes  # type: ignore[attr-defined]
    try:
        alert = read_alert(body, _kvlist(attributes))
    except Exception:
        # As in falco-risk: a record the reader cannot read (MalformedAlertError
        # or worse) is passed on as it came.
        return
    if alert is None:
        return
    detection = _TAGGER.match(alert, resource)
    if detection is None:
        return
    _set_attributes(attributes, render(detection, extract(detection, alert)))


def _resource(resource_logs: object) -> dict[str, object]:
    resource = resource_logs.resource  # type: ignore[attr-defined]
    return {} if resource is None else _kvlist(resource.attributes)


def _kvlist(pairs: object, depth: int = 0) -> dict[str, object]:
    result: dict[str, object] = {}
    for pair in pairs:  # type: ignore[attr-defined]
        if pair.key not in result:
            result[pair.key] = _python(pair.value, depth)
    return result


def _python(value: object, depth: int = 0) -> object:
    """The Python view of a rotel AnyValue, as falco_risk.otlp_values gives for protobuf."""
    if value is None or depth > MAX_DEPTH:
        return None
    inner = value.value  # type: ignore[attr-defined]
    if isinstance(inner, KeyValueList):
        return _kvlist(inner, depth + 1)
    if isinstance(inner, ArrayValue):
        return [_python(item, depth + 1) for item in inner]
    return inner


def _set_attributes(attributes: object, values: Mapping[str, AttributeValue]) -> None:
    """Replace keys already present (dropping repeats), append the others."""
    pending = dict(values)
    seen: set[str] = set()
    index = 0
    while index < len(attributes):  # type: ignore[arg-type]
        key = attributes[index].key  # type: ignore[index]
        if key in seen:
            del attributes[index]  # type: ignore[attr-defined]
            continue
        if key in pending:
            attributes[index] = _pair(key, pending.pop(key))  # type: ignore[index]
            seen.add(key)
        index += 1
    for key, value in pending.items():
        attributes.append(_pair(key, value))  # type: ignore[attr-defined]


def _pair(key: str, value: AttributeValue) -> object:
    if isinstance(value, str):
        return KeyValue.new_string_value(key, value)
    array = ArrayValue()
    for item in value:
        array.append(AnyValue(item))
    return KeyValue.new_array_value(key, array)
