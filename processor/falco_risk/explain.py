"""Say, for one log record, what the catalog makes of it and why."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from falco_risk.detection import Detection
from falco_risk.enrich import extract
from falco_risk.falco import FalcoAlert, MalformedAlertError, read_alert
from falco_risk.match import AllOf, RuleIs
from falco_risk.otlp_values import kvlist_to_dict, to_python
from falco_risk.tagger import Tagger


def explain_record(tagger: Tagger, record: LogRecord, resource: Mapping[str, object]) -> list[str]:
    """Lines saying which detection matched the record, or why none did."""
    try:
        alert = read_alert(to_python(record.body), kvlist_to_dict(record.attributes))
    except MalformedAlertError as exc:
        return [f"  malformed Falco alert, forwarded untouched: {exc}"]
    if alert is None:
        return ["  not a Falco alert: no Falco header, JSON alert keys or alert attributes"]

    lines = [f"  Falco alert: {_describe(alert)}"]
    if alert.source == "internal":
        return [*lines, "  a Falco internal event: never tagged"]

    verdict = tagger.judge(alert, resource)
    winner = verdict.winner
    for detection in verdict.matched:
        role = "MATCHED, its attributes are added" if detection is winner else "also matched"
        lines.append(f"  {role}: {_name(detection)}, risk score {detection.risk_score}")
    for detection, suppression in verdict.suppressed:
        lines.append(
            f"  suppressed: {_name(detection)} by {suppression.name!r} ({suppression.reason})"
        )
    matched = {d.id for d in verdict.matched} | {d.id for d, _ in verdict.suppressed}
    other_rules = 0
    for detection in tagger.catalog.enabled:
        if detection.id in matched:
            continue
        if _keyed_on_other_rule(detection, alert):
            other_rules += 1
            continue
        reason = detection.condition.failure(alert, resource) or "no match"
        lines.append(f"  no match: {_name(detection)}: {reason}")
    if other_rules:
        lines.append(f"  no match: {other_rules} detection(s) for other Falco rules")
    if winner is None:
        lines.append("  result: no detection applies; the record is forwarded untouched")
        return lines

    lines.append(f"  fields of {winner.name}:")
    found = extract(winner, alert)
    for name, keys in winner.fields:
        value = found.get(name)
        if value is None:
            lines.append(f"    {name} = (absent; looked for {', '.join(keys)})")
        else:
            lines.append(f"    {name} = {value.value!r} from {value.origin}")
    return lines


def _keyed_on_other_rule(detection: Detection, alert: FalcoAlert) -> bool:
    """True when the detection requires a Falco rule name this alert does not have."""
    condition = detection.condition
    parts = condition.parts if isinstance(condition, AllOf) else (condition,)
    return any(isinstance(p, RuleIs) and alert.rule not in p.names for p in parts)


def _describe(alert: FalcoAlert) -> str:
    parts = [f"{alert.shape} shape"]
    if alert.rule:
        parts.append(f"rule {alert.rule!r}")
    if alert.priority:
        parts.append(f"priority {alert.priority}")
    if alert.tags:
        parts.append(f"tags {', '.join(alert.tags)}")
    return ", ".join(parts)


def _name(detection: Detection) -> str:
    return f"{detection.name!r} ({detection.id})"
