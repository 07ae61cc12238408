"""Render the attributes a matching detection adds to a log record."""

from __future__ import annotations

import re
from dataclasses import dataclass

from falco_risk import attributes as attr
from falco_risk.detection import Detection
from falco_risk.falco import FalcoAlert, FieldValue
from falco_risk.otlp_values import AttributeValue

MISSING = "unknown"
# Attribute values taken from an alert are cut to this many characters so a
# megabyte command line cannot make a tagged record balloon.
DEFAULT_MAX_VALUE_LENGTH = 4096

_TOKEN = re.compile(r"\$([A-Za-z0-9_.]+)\$")


def extract(detection: Detection, alert: FalcoAlert) -> dict[str, FieldValue]:
    """The detection's fields found in the alert, by the detection's field name."""
    found: dict[str, FieldValue] = {}
    for name, keys in detection.fields:
        value = alert.field(keys)
        if value is not None:
            found[name] = value
    return found


def render(
    detection: Detection,
    fields: dict[str, FieldValue],
    max_value_length: int = DEFAULT_MAX_VALUE_LENGTH,
) -> dict[str, AttributeValue]:
    """Every attribute a match adds: extracted fields, risk, annotations and rule identity."""
    values = {name: found.value[:max_value_length] for name, found in fields.items()}
    result: dict[str, AttributeValue] = dict(values)

    target = detection.risk_object
    if target is not None:
        result[attr.RISK_SCORE] = str(target.score)
        result[attr.RISK_OBJECT] = values.get(target.field, MISSING)
        result[attr.RISK_OBJECT_TYPE] = target.type
    threats = [(values[t.field], t.type) for t in detection.threat_objects if t.field in values]
    if threats:
        # Splunk's risk events carry threat objects as two parallel multivalue fields.
        result[attr.THREAT_OBJECT] = [value for value, _ in threats]
        result[attr.THREAT_OBJECT_TYPE] = [kind for _, kind in threats]
    compiled = _compiled(detection)
    result[attr.RISK_MESSAGE] = "".join(
        part if is_text else values.get(part, MISSING) for part, is_text in compiled.message
    )
    result.update(compiled.static)
    return result


@dataclass(frozen=True)
class _Compiled:
    """What render() needs of a detection that does not depend on the alert."""

    # Literal text and field names, in order, with True for literal text.
    message: tuple[tuple[str, bool], ...]
    # Shared between calls: callers treat rendered values as read-only.
    static: dict[str, AttributeValue]


# Detections are immutable and live as long as their catalog; a detection is
# compiled once and kept here by id (with the detection itself, so the id
# cannot be reused while the entry exists).
_COMPILED: dict[int, tuple[Detection, _Compiled]] = {}
_COMPILED_LIMIT = 1024


def _compiled(detection: Detection) -> _Compiled:
    entry = _COMPILED.get(id(detection))
    if entry is not None and entry[0] is detection:
        return entry[1]

    pieces = _TOKEN.split(detection.message)
    # split() alternates literal text and the captured field names.
    message = tuple((piece, i % 2 == 0) for i, piece in enumerate(pieces) if piece or i % 2)
    compiled = _Compiled(message, _static(detection))
    if len(_COMPILED) >= _COMPILED_LIMIT:
        # Catalog reloads leave old detections behind; start over.
        _COMPILED.clear()
    _COMPILED[id(detection)] = (detection, compiled)
    return compiled


def _static(detection: Detection) -> dict[str, AttributeValue]:
    """The attributes that are the same for every alert the detection matches."""
    result: dict[str, AttributeValue] = {}
    techniques = detection.techniques
    if techniques:
        result[attr.MITRE_ATTACK] = _unique(t.technique_id for t in techniques)
        result[attr.MITRE_TECHNIQUE] = _unique(t.technique for t in techniques)
        result[attr.MITRE_TACTIC] = _unique(t.tactic for t in techniques)
        result[attr.MITRE_TACTIC_ID] = _unique(t.tactic_id for t in techniques)
    for key, items in (
        (attr.KILL_CHAIN_PHASES, detection.kill_chain_phases),
        (attr.NIST, detection.nist),
        (attr.CIS20, detection.cis20),
        (attr.ANALYTIC_STORIES, detection.analytic_stories),
    ):
        if items:
            result[key] = list(items)
    if detection.impact is not None:
        result[attr.IMPACT] = str(detection.impact)
    if detection.confidence is not None:
        result[attr.CONFIDENCE] = str(detection.confidence)

    result[attr.SECURITY_RULE_NAME] = detection.name
    result[attr.SECURITY_RULE_UUID] = detection.id
    result[attr.SECURITY_RULE_VERSION] = str(detection.version)
    result[attr.SECURITY_RULE_CATEGORY] = detection.type
    result[attr.SECURITY_RULE_RULESET_NAME] = detection.ruleset
    return result


def _unique(items: object) -> list[str]:
    return list(dict.fromkeys(items))  # type: ignore[call-overload]
