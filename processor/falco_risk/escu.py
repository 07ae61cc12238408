"""Convert Splunk ESCU detection YAML into catalog entries.

Both formats are read: the older one keeps risk in ``tags`` (impact,
confidence, risk_score, message, observable, required_fields), the current
one in ``rba`` (message, risk_objects with their scores, threat_objects).
ATT&CK ids are looked up in the technique table; kill chain phases, NIST and
CIS are derived as Splunk's content tooling derives them unless the file
states them. The search is translated piece by piece (see ``search.py``), and
a detection whose search has parts that were not translated is written
disabled, with those parts in its notes, for a person to finish.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from falco_risk import attack
from falco_risk.importing import ImportResult
from falco_risk.search import translate_search

RULESET = "Splunk ESCU"
_TOKEN = re.compile(r"\$([A-Za-z0-9_.]+)\$")
_USER_TYPES = {"user", "username", "email address"}
_SYSTEM_TYPES = {"device", "endpoint", "hostname", "ip address"}
# Observable types with the Attacker role that become threat objects.
_THREAT_TYPES = {
    "process name": "process",
    "process": "process",
    "file name": "file_name",
    "file": "file_name",
    "file hash": "file_name",
    "ip address": "ip_address",
    "url string": "url",
    "url": "url",
}


class EscuError(ValueError):
    """A file is not a Splunk ESCU detection that can be imported."""


@cache
def field_aliases() -> dict[str, list[str]]:
    """The documented table of Falco keys for each ESCU field name."""
    path = resources.files("falco_risk").joinpath("data", "escu_field_aliases.yaml")
    table: dict[str, list[str]] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return table


def import_escu(paths: Iterable[str]) -> ImportResult:
    """Read each ESCU detection file and build its catalog entry; raises EscuError."""
    result = ImportResult()
    for path in paths:
        try:
            document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise EscuError(f"{path}: cannot read: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise EscuError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
        try:
            result.detections.append(convert(document, path, result))
        except EscuError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # A value of an unexpected shape deep in the file: name the file, not a traceback.
            raise EscuError(f"{path}: cannot import: {type(exc).__name__}: {exc}") from exc
    return result


def convert(document: object, path: str, result: ImportResult) -> dict[str, Any]:
    """The catalog entry for one parsed ESCU document, noting what needs a look."""
    if not isinstance(document, dict):
        raise EscuError(f"{path}: not an ESCU detection (expected a mapping)")
    for key in ("id", "name", "version", "type", "search"):
        if key not in document:
            raise EscuError(f"{path}: not an ESCU detection (no {key!r})")
    tags = document.get("tags") or {}
    if not isinstance(tags, dict):
        raise EscuError(f"{path}: 'tags' is not a mapping")
    where = f"{Path(path).name}: detection {document['name']!r}"

    search = translate_search(str(document["search"]))
    for part in search.untranslated:
        result.note(where, f"search part not translated: {part}")
    if search.condition is None:
        raise EscuError(f"{where}: the search gives nothing to match on ({document['search']!r})")

    risk, risk_fields = _risk(document, tags, where, result)
    names = _unique([*search.count_by, *tags.get("required_fields", []), *risk_fields])
    entry: dict[str, Any] = {
        "id": str(document["id"]),
        "name": str(document["name"]),
        "version": int(document["version"]),
        "type": str(document["type"]),
        "ruleset": RULESET,
        "description": " ".join(str(document.get("description", "")).split()),
    }
    if search.untranslated:
        entry["enabled"] = False
    if document.get("references"):
        entry["references"] = [str(r) for r in document["references"]]
    if search.untranslated:
        entry["notes"] = (
            "Disabled on import: these parts of the Splunk search were not translated: "
            + "; ".join(search.untranslated)
            + "."
        )
    entry["source"] = {"kind": "escu", "file": Path(path).name, "version": str(document["version"])}
    entry["match"] = search.condition
    entry["fields"] = _fields(names, where, result)
    if search.count_by:
        entry["count_by"] = list(search.count_by)
    entry.update(_annotations(document, tags, where, result))
    entry["risk"] = risk
    if search.filter_macro:
        entry["suppressions"] = []
    return entry


def _risk(
    document: Mapping[str, Any], tags: Mapping[str, Any], where: str, result: ImportResult
) -> tuple[dict[str, Any], list[str]]:
    rba = document.get("rba")
    if isinstance(rba, dict):
        return _rba_risk(rba, where, result)
    return _tags_risk(tags, where, result)


def _rba_risk(
    rba: Mapping[str, Any], where: str, result: ImportResult
) -> tuple[dict[str, Any], list[str]]:
    objects: list[dict[str, Any]] = []
    for item in rba.get("risk_objects") or []:
        kind = str(item.get("type", "other"))
        if kind not in ("user", "system", "other"):
            result.note(
                where, f"risk object type {kind!r} is not user, system or other; kept as other"
            )
            kind = "other"
        objects.append({"field": str(item["field"]), "type": kind, "score": int(item["score"])})
    threats: list[dict[str, str]] = [
        {"field": str(item["field"]), "type": str(item["type"])}
        for item in rba.get("threat_objects") or []
    ]
    risk: dict[str, Any] = {"message": str(rba.get("message", ""))}
    risk["objects"] = objects
    if threats:
        risk["threat_objects"] = threats
    fields = [o["field"] for o in objects] + [t["field"] for t in threats]
    return risk, [*fields, *_tokens(risk["message"])]


def _tags_risk(
    tags: Mapping[str, Any], where: str, result: ImportResult
) -> tuple[dict[str, Any], list[str]]:
    impact, confidence = tags.get("impact"), tags.get("confidence")
    risk: dict[str, Any] = {"message": str(tags.get("message", ""))}
    score = None
    if isinstance(impact, int) and isinstance(confidence, int):
        risk["impact"], risk["confidence"] = impact, confidence
        score = round(impact * confidence / 100)
    stated = tags.get("risk_score")
    explicit = isinstance(stated, int) and stated != score
    if explicit:
        result.note(
            where, f"risk_score {stated} differs from impact x confidence; {stated} is kept"
        )
        score = stated

    objects: list[dict[str, Any]] = []
    threats: list[dict[str, str]] = []
    for observable in tags.get("observable") or []:
        name = str(observable.get("name"))
        kind = str(observable.get("type", "")).lower()
        roles = observable.get("role") or []
        target: dict[str, Any]
        if "Attacker" in roles and kind in _THREAT_TYPES:
            threats.append({"field": name, "type": _THREAT_TYPES[kind]})
            continue
        if "Victim" in roles and kind in _USER_TYPES:
            target = {"field": name, "type": "user"}
        elif "Victim" in roles and kind in _SYSTEM_TYPES:
            target = {"field": name, "type": "system"}
        else:
            target = {"field": name, "type": "other"}
        if explicit or "impact" not in risk:
            if score is None:
                result.note(
                    where, f"observable {name!r} has no score: no impact, confidence or risk_score"
                )
                continue
            target["score"] = score
        objects.append(target)
    risk["objects"] = objects
    if threats:
        risk["threat_objects"] = threats
    fields = [o["field"] for o in objects] + [t["field"] for t in threats]
    return risk, [*fields, *_tokens(risk["message"])]


def _annotations(
    document: Mapping[str, Any], tags: Mapping[str, Any], where: str, result: ImportResult
) -> dict[str, Any]:
    techniques, tactics = [], []
    for technique_id in tags.get("mitre_attack_id") or []:
        found = attack.technique(str(technique_id))
        if found is None:
            result.note(where, f"ATT&CK id {technique_id} is not in the technique table; left out")
            continue
        for tactic in found.tactics:
            tactics.append(tactic)
            techniques.append(
                {
                    "technique_id": found.id,
                    "technique": found.name,
                    "tactic": tactic.name,
                    "tactic_id": tactic.id,
                }
            )

    derived = attack.kill_chain_phases(tactics)
    stated = tags.get("kill_chain_phases")
    if stated and list(stated) != derived:
        result.note(where, f"kill_chain_phases {list(stated)} kept; ATT&CK tactics give {derived}")
    annotations: dict[str, Any] = {}
    if techniques:
        annotations["mitre_attack"] = techniques
    phases = list(stated) if stated else derived
    if phases:
        annotations["kill_chain_phases"] = phases
    annotations["nist"] = list(tags.get("nist") or attack.nist_for_type(str(document["type"])))
    annotations["cis20"] = list(
        tags.get("cis20") or attack.cis_for_domain(str(tags.get("security_domain", "")))
    )
    stories = tags.get("analytic_story") or []
    if stories:
        annotations["analytic_stories"] = [str(story) for story in stories]
    return annotations


def _fields(names: list[str], where: str, result: ImportResult) -> dict[str, list[str]]:
    aliases = field_aliases()
    fields: dict[str, list[str]] = {}
    for name in names:
        if name in aliases:
            fields[name] = list(aliases[name])
        else:
            result.note(
                where, f"field {name!r} has no Falco alias; it is read from the key {name!r}"
            )
            fields[name] = [name]
    return fields


def _tokens(message: str) -> list[str]:
    return _TOKEN.findall(message)


def _unique(items: Iterable[Any]) -> list[str]:
    return list(dict.fromkeys(str(item) for item in items))
