"""Convert Falco rule files into catalog entries, one per rule, keyed on the rule name.

ATT&CK technique ids come from the rule's tags (``T1059``, ``T1059.004``)
and its tactics from ``mitre_<tactic>`` (or ``TA0002``) tags; a rule without
a technique tag is reported and left out, never guessed. The risk score comes
from the rule's priority through a table (PRIORITY_SCORES, replaceable), and
the extracted fields are the ones the rule's output names, in both the
``label=%field`` and bare ``%field`` forms, with ``%container.info`` standing
for the container's id, name, image and tag. Lists, macros and disabled rules
are skipped; later ``append``/``override`` entries and ``enabled`` toggles are
applied to the rule they name, as Falco applies them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from falco_risk import attack
from falco_risk.catalog import Catalog, load_catalog
from falco_risk.falco import FalcoAlert
from falco_risk.importing import ImportResult

RULESET = "Falco rules"
DETECTION_TYPE = "TTP"
# Falco rules watch hosts and containers, the "endpoint" security domain.
SECURITY_DOMAIN = "endpoint"

PRIORITY_SCORES: Final = {
    "emergency": 100,
    "alert": 90,
    "critical": 80,
    "error": 70,
    "warning": 50,
    "notice": 30,
    "informational": 20,
    "debug": 10,
}
_PRIORITY_ALIASES = {"info": "informational"}

_TECHNIQUE = re.compile(r"T\d{4}(?:\.\d{3})?")
_OUTPUT_FIELD = re.compile(
    r"(?:(?<![\w.%])(?P<label>[A-Za-z_][\w.]*(?:\[\d+\])?)=)?%(?P<field>[a-z][\w.]*(?:\[[^\]\s]*\])?)"
)
_FIELD_LIST_START = re.compile(r"\s+\|\s+|\s+\((?=[\w.\[\]]+=%)")
_CONTAINER_INFO = (
    ("container_id", "container.id"),
    ("container_name", "container.name"),
    ("container_image", "container.image.repository"),
    ("container_image_tag", "container.image.tag"),
)
# The Falco fields a risk object is chosen from, in order, with its type.
_RISK_OBJECT_FIELDS = (
    ("user.name", "user"),
    ("container.name", "system"),
    ("k8s.pod.name", "system"),
    ("container.id", "system"),
    ("proc.name", "other"),
)
_MESSAGE_FIELDS = ("user.name", "proc.name", "container.name", "k8s.pod.name")
_OVERRIDE_KEYS = ("tags", "output", "priority", "desc", "enabled")


class FalcoRulesError(ValueError):
    """A file is not a Falco rules file that can be imported."""


@dataclass
class _Rule:
    name: str
    file: str
    engine_version: str
    desc: str = ""
    output: str = ""
    priority: str = ""
    tags: list[str] = field(default_factory=list)
    enabled: bool = True


def parse_priority_scores(text: str) -> dict[str, int]:
    """Read ``notice=40,warning=60`` over the default table; raises ValueError."""
    scores = dict(PRIORITY_SCORES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        key = _PRIORITY_ALIASES.get(name.strip().lower(), name.strip().lower())
        if not sep or key not in scores or not value.strip().isdigit():
            raise ValueError(f"{item!r} is not PRIORITY=SCORE with a Falco priority")
        if not 1 <= int(value) <= 100:
            raise ValueError(f"{item!r}: a score is 1 to 100")
        scores[key] = int(value)
    return scores


def import_falco_rules(
    paths: Iterable[str],
    scores: Mapping[str, int] = PRIORITY_SCORES,
    known: Catalog | None = None,
) -> ImportResult:
    """Read the rule files in order and build one catalog entry per enabled, tagged rule."""
    result = ImportResult()
    rules: dict[str, _Rule] = {}
    for path in paths:
        for index, entry in enumerate(_entries(path)):
            try:
                _apply(entry, rules, f"{Path(path).name}: item {index + 1}", path, result)
            except (TypeError, AttributeError, KeyError) as exc:
                raise FalcoRulesError(
                    f"{path}: item {index + 1}: cannot import: {type(exc).__name__}: {exc}"
                ) from exc

    known = load_catalog() if known is None else known
    for rule in rules.values():
        where = f"{rule.file}: rule {rule.name!r}"
        if not rule.enabled:
            result.note(where, "disabled in the rules files; skipped")
            continue
        detection = _detection(rule, scores, known, where, result)
        if detection is not None:
            result.detections.append(detection)
    return result


def _entries(path: str) -> list[Any]:
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise FalcoRulesError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise FalcoRulesError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if document is None:
        return []
    if not isinstance(document, list):
        raise FalcoRulesError(f"{path}: a Falco rules file is a list of rules, macros and lists")
    return document


def _apply(
    entry: object, rules: dict[str, _Rule], where: str, path: str, result: ImportResult
) -> None:
    if not isinstance(entry, dict) or "rule" not in entry:
        return  # lists, macros, version requirements: nothing to import
    name = str(entry["rule"])
    where = f"{Path(path).name}: rule {name!r}"
    earlier = rules.get(name)
    override = entry.get("override")
    if (
        entry.get("append") is True
        or isinstance(override, dict)
        or set(entry) == {"rule", "enabled"}
    ):
        if earlier is None:
            result.note(where, "changes a rule no earlier file defines; skipped")
            return
        _change(earlier, entry, override if isinstance(override, dict) else {}, where, result)
        return

    if earlier is not None:
        result.note(where, f"redefined; replaces the definition from {earlier.file}")
    rules[name] = _Rule(
        name=name,
        file=Path(path).name,
        engine_version=_engine_version(path),
        desc=" ".join(str(entry.get("desc", "")).split()),
        output=" ".join(str(entry.get("output", "")).split()),
        priority=str(entry.get("priority", "")).strip(),
        tags=[str(tag) for tag in entry.get("tags") or []],
        enabled=entry.get("enabled", True) is not False,
    )


def _change(
    rule: _Rule,
    entry: Mapping[str, Any],
    override: Mapping[str, Any],
    where: str,
    result: ImportResult,
) -> None:
    if "enabled" in entry and ("enabled" in override or set(entry) == {"rule", "enabled"}):
        rule.enabled = entry["enabled"] is not False
    for key in _OVERRIDE_KEYS:
        if key not in entry or key == "enabled" or key not in override:
            continue
        if key == "tags":
            tags = [str(tag) for tag in entry["tags"] or []]
            rule.tags = [*rule.tags, *tags] if override[key] == "append" else tags
        elif key == "output":
            rule.output = " ".join(str(entry["output"]).split())
        elif key == "priority":
            rule.priority = str(entry["priority"]).strip()
        else:
            rule.desc = " ".join(str(entry["desc"]).split())
    if entry.get("append") is True or {"condition", "exceptions"} & set(override):
        result.note(
            where, "condition or exceptions changed; the catalog keys on the rule name only"
        )


def _engine_version(path: str) -> str:
    for entry in _entries(path):
        if isinstance(entry, dict) and "required_engine_version" in entry:
            return str(entry["required_engine_version"])
    return ""


def _detection(
    rule: _Rule, scores: Mapping[str, int], known: Catalog, where: str, result: ImportResult
) -> dict[str, Any] | None:
    techniques, notes = _techniques(rule, where, result)
    if not techniques:
        result.note(where, "no ATT&CK technique tag; skipped")
        return None
    priority = _PRIORITY_ALIASES.get(rule.priority.lower(), rule.priority.lower())
    if priority not in scores:
        result.note(where, f"priority {rule.priority!r} is not a Falco priority; skipped")
        return None
    fields, labels = _fields(rule.output)
    target = next(((labels[f], kind) for f, kind in _RISK_OBJECT_FIELDS if f in labels), None)
    if target is None:
        result.note(where, "its output names no user, container or process field; skipped")
        return None

    message = _message(rule, labels)
    notes += _overlaps(rule, message, techniques, known)
    tactics = [attack.tactic(_short(t["tactic_id"])) for t in techniques]
    entry: dict[str, Any] = {
        "id": "falco-" + re.sub(r"[^a-z0-9]+", "-", rule.name.lower()).strip("-"),
        "name": rule.name,
        "version": 1,
        "type": DETECTION_TYPE,
        "ruleset": RULESET,
        "description": rule.desc,
    }
    if notes:
        entry["notes"] = "\n".join(notes)
    source = {"kind": "falco_rules", "file": rule.file}
    if rule.engine_version:
        source["version"] = rule.engine_version
    entry["source"] = source
    entry["match"] = {"rule": rule.name}
    entry["fields"] = fields
    entry["mitre_attack"] = techniques
    entry["kill_chain_phases"] = attack.kill_chain_phases(tactics)
    entry["nist"] = attack.nist_for_type(DETECTION_TYPE)
    entry["cis20"] = attack.cis_for_domain(SECURITY_DOMAIN)
    entry["risk"] = {
        "message": message,
        "objects": [{"field": target[0], "type": target[1], "score": scores[priority]}],
    }
    return entry


def _techniques(
    rule: _Rule, where: str, result: ImportResult
) -> tuple[list[dict[str, str]], list[str]]:
    tactics = [t for t in (attack.tactic_from_tag(tag) for tag in rule.tags) if t is not None]
    techniques: list[dict[str, str]] = []
    notes: list[str] = []
    for tag in rule.tags:
        if not _TECHNIQUE.fullmatch(tag):
            continue
        found = attack.technique(tag)
        if found is None:
            result.note(where, f"ATT&CK id {tag} is not in the technique table; left out")
            continue
        chosen = [t for t in found.tactics if t in tactics] or tactics or list(found.tactics)
        if tactics and not set(tactics) & set(found.tactics):
            notes.append(
                f"Falco tags {tag} with {', '.join(t.name for t in tactics)}; ATT&CK lists "
                f"{found.name} under {', '.join(t.name for t in found.tactics)}. "
                "The rule's tactic is kept."
            )
        for tactic in chosen:
            techniques.append(
                {
                    "technique_id": found.id,
                    "technique": found.name,
                    "tactic": tactic.name,
                    "tactic_id": tactic.id,
                }
            )
    return techniques, notes


def _fields(output: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The fields an output names, and the field name chosen for each Falco field."""
    fields: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    for match in _OUTPUT_FIELD.finditer(output):
        falco_field, label = match.group("field"), match.group("label")
        if falco_field == "container.info":
            for name, key in _CONTAINER_INFO:
                _add(fields, labels, name, [key, name], key)
            continue
        name = _name(label or falco_field)
        keys = [falco_field] if not label or label == falco_field else [falco_field, label]
        _add(fields, labels, name, keys, falco_field)
    return fields, labels


def _add(
    fields: dict[str, list[str]], labels: dict[str, str], name: str, keys: list[str], key: str
) -> None:
    if name not in fields:
        fields[name] = keys
    labels.setdefault(key, name)


def _name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", label).strip("_")


def _message(rule: _Rule, labels: Mapping[str, str]) -> str:
    head = _FIELD_LIST_START.split(rule.output, maxsplit=1)[0].strip()
    head = _OUTPUT_FIELD.sub(lambda m: f"${labels.get(m.group('field'), 'unknown')}$", head)
    parts = [f"{labels[f]}=${labels[f]}$" for f in _MESSAGE_FIELDS if f in labels]
    text = head or rule.name
    return f"{text} ({', '.join(parts)})" if parts else text


def _overlaps(
    rule: _Rule, message: str, techniques: list[dict[str, str]], known: Catalog
) -> list[str]:
    """Notes on catalog detections that also match this rule's alerts and map them elsewhere."""
    head = _FIELD_LIST_START.split(rule.output, maxsplit=1)[0]
    alert = FalcoAlert(
        text=head, message=head, rule=rule.name, priority=rule.priority, source="syscall",
        tags=tuple(rule.tags), hostname=None, time=None, shape="json",
        output_fields={}, text_fields={},
    )  # fmt: skip
    mine = {t["technique_id"] for t in techniques}
    notes = []
    for detection in known.enabled:
        theirs = {t.technique_id for t in detection.techniques}
        if theirs == mine or not detection.condition.matches(alert, {}):
            continue
        notes.append(
            f"Alerts of this rule also match {detection.name!r} ({detection.id}), which maps "
            f"them to {', '.join(sorted(theirs)) or 'no technique'} where Falco's tags say "
            f"{', '.join(sorted(mine))}. The catalog keeps the detection with the higher risk "
            f"score; to prefer this one, disable the other: {{id: {detection.id}, enabled: false}}."
        )
    return notes


def _short(tactic_id: str) -> str:
    return next(short for short, (_, tid) in attack.TACTICS.items() if tid == tactic_id)
