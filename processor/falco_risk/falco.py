"""Minimal Falco JSON alert reader, standing in until the full multi-shape parser is merged."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class MalformedAlertError(ValueError):
    """A record looks like a Falco alert but cannot be read."""


@dataclass(frozen=True, slots=True)
class FieldValue:
    value: str
    origin: str


@dataclass(frozen=True, slots=True)
class FalcoAlert:
    text: str
    message: str
    rule: str | None
    priority: str | None
    source: str | None
    tags: tuple[str, ...]
    hostname: str | None
    time: str | None
    shape: str
    output_fields: Mapping[str, str] = field(default_factory=dict)
    text_fields: Mapping[str, str] = field(default_factory=dict)

    def field(self, keys: Sequence[str]) -> FieldValue | None:
        for key in keys:
            if key in self.output_fields:
                return FieldValue(self.output_fields[key], f"output_fields[{key}]")
        for key in keys:
            if key in self.text_fields:
                return FieldValue(self.text_fields[key], f"text[{key}]")
        return None


def read_alert(body: object, attributes: Mapping[str, object]) -> FalcoAlert | None:
    if not isinstance(body, str) or not body.startswith("{"):
        return None
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise MalformedAlertError(str(exc)) from exc
    if not isinstance(doc, dict) or "output" not in doc:
        return None
    of = {
        k: str(v)
        for k, v in (doc.get("output_fields") or {}).items()
        if v not in (None, "", "<NA>")
    }
    return FalcoAlert(
        doc["output"],
        doc["output"],
        doc.get("rule"),
        doc.get("priority"),
        doc.get("source"),
        tuple(doc.get("tags") or ()),
        doc.get("hostname"),
        doc.get("time"),
        "json",
        of,
        {},
    )
