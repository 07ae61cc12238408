"""Load, validate and compose detection catalogs.

A catalog file is YAML with a top-level ``detections`` list. Validation is
strict: an unknown key, a missing key or a value of the wrong shape stops the
load with one line naming the file, the detection and the key.

Composition: the packaged seed detection is loaded first, then each user
catalog in the order given (a directory contributes its ``.yaml`` and
``.yml`` files sorted by name). A detection whose id equals an earlier one
replaces it in place; an entry holding only ``id`` and ``enabled`` switches an
earlier detection off (or on). Two entries with one id in one file are an
error.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from falco_risk.conditions import parse_condition
from falco_risk.detection import Detection, RiskObject, Source, Technique, ThreatObject
from falco_risk.errors import CatalogError
from falco_risk.suppress import Suppression

logger = logging.getLogger(__name__)

SEED_FILE = "kubernetes_falco_shell_spawned.yaml"
SEED_ORIGIN = f"<seed {SEED_FILE}>"

_TECHNIQUE_ID = re.compile(r"T\d{4}(\.\d{3})?")
_TACTIC_ID = re.compile(r"TA\d{4}")
_TOKEN = re.compile(r"\$([A-Za-z0-9_.]+)\$")
_FIELD_NAME = re.compile(r"[A-Za-z0-9_.]+")

_DETECTION_KEYS = {
    "id": True,
    "name": True,
    "version": True,
    "type": True,
    "ruleset": False,
    "description": False,
    "enabled": False,
    "references": False,
    "notes": False,
    "source": False,
    "match": True,
    "fields": True,
    "count_by": False,
    "mitre_attack": False,
    "kill_chain_phases": False,
    "nist": False,
    "cis20": False,
    "analytic_stories": False,
    "risk": True,
    "suppressions": False,
}
_RISK_KEYS = {
    "message": True,
    "impact": False,
    "confidence": False,
    "objects": False,
    "threat_objects": False,
}
_TECHNIQUE_KEYS = ("technique_id", "technique", "tactic", "tactic_id")
_SUPPRESSION_KEYS = {"name": True, "reason": True, "expires": False, "when": True}
_SOURCE_KEYS = {"kind": True, "file": False, "version": False}
SOURCE_KINDS = ("escu", "falco_rules", "custom")
RISK_OBJECT_TYPES = ("user", "system", "other")
# Splunk's threat object types, as its content tooling accepts them.
THREAT_OBJECT_TYPES = (
    "certificate_common_name", "certificate_organization", "certificate_serial",
    "certificate_unit", "command", "domain", "email_address", "email_subject", "file_hash",
    "file_name", "file_path", "http_user_agent", "ip_address", "process", "process_name",
    "parent_process", "parent_process_name", "process_hash", "registry_path",
    "registry_value_name", "registry_value_text", "service", "signature", "system",
    "tls_hash", "url",
)  # fmt: skip


@dataclass(frozen=True)
class Catalog:
    """The detections in force, in composition order, and a hash of what they came from."""

    detections: tuple[Detection, ...]
    version: str = ""
    sources: tuple[str, ...] = ()

    @property
    def enabled(self) -> tuple[Detection, ...]:
        """The detections that are applied to records."""
        return tuple(d for d in self.detections if d.enabled)

    @property
    def needles(self) -> frozenset[bytes] | None:
        """Byte strings a request must contain to hold a candidate, or None for 'always decode'."""
        found: set[bytes] = set()
        for detection in self.enabled:
            needles = detection.condition.needles()
            if needles is None:
                return None
            found |= needles
        return frozenset(found)


@dataclass(frozen=True)
class _Toggle:
    """An entry that only switches an earlier detection on or off."""

    id: str
    enabled: bool
    where: str


def load_catalog(paths: Sequence[str] = (), now: float | None = None) -> Catalog:
    """Load the seed detection, then the given files and directories, and compose them."""
    seed = resources.files("falco_risk").joinpath("detections", SEED_FILE)
    sources = [(SEED_ORIGIN, seed.read_bytes())]
    for path in _expand(paths):
        try:
            sources.append((str(path), path.read_bytes()))
        except OSError as exc:
            raise CatalogError(f"{path}: cannot read catalog: {exc.strerror}") from exc

    detections: list[Detection] = []
    for origin, data in sources:
        for entry in _parse_file(data, origin):
            _compose(detections, entry)

    _report_expired(detections, time.time() if now is None else now)
    digest = hashlib.sha256()
    for origin, data in sources:
        digest.update(origin.encode() + b"\0" + hashlib.sha256(data).digest())
    return Catalog(tuple(detections), digest.hexdigest()[:12], tuple(o for o, _ in sources))


def validate_text(data: bytes, where: str) -> int:
    """Validate one catalog file's content on its own; returns its entry count."""
    return len(_parse_file(data, where))


def catalog_files(paths: Sequence[str]) -> list[Path]:
    """The files a list of catalog paths stands for, in load order."""
    return _expand(paths)


def _expand(paths: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            )
        else:
            files.append(path)
    return files


def _compose(detections: list[Detection], entry: Detection | _Toggle) -> None:
    index = next((i for i, d in enumerate(detections) if d.id == entry.id), None)
    if isinstance(entry, _Toggle):
        if index is None:
            raise CatalogError(f"{entry.where}: enabled: no earlier detection has this id")
        detections[index] = replace(detections[index], enabled=entry.enabled)
        logger.info(
            "detection %r (%s) %s by %s",
            entry.id,
            detections[index].name,
            "enabled" if entry.enabled else "disabled",
            entry.where.split(": ")[0],
        )
        return
    if index is None:
        detections.append(entry)
        return
    logger.info(
        "detection %r (%s, version %d) replaced by %s version %d from %s",
        entry.id,
        detections[index].name,
        detections[index].version,
        entry.name,
        entry.version,
        entry.source.file or "a later catalog",
    )
    detections[index] = entry


def _report_expired(detections: Sequence[Detection], now: float) -> None:
    for detection in detections:
        for suppression in detection.suppressions:
            if suppression.expired(now):
                logger.warning(
                    "suppression %r of detection %r expired on %s and no longer applies",
                    suppression.name,
                    detection.id,
                    suppression.expires,
                )


def _parse_file(data: bytes, where: str) -> list[Detection | _Toggle]:
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(document, dict) or set(document) != {"detections"}:
        raise CatalogError(f"{where}: a catalog is a mapping with one key, 'detections'")
    entries = document["detections"]
    if not isinstance(entries, list):
        raise CatalogError(f"{where}: 'detections' must be a list")

    parsed = [_parse_entry(entry, f"{where}: detection {i + 1}") for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for item in parsed:
        if item.id in seen:
            raise CatalogError(f"{where}: detection id {item.id!r} is defined twice in one file")
        seen.add(item.id)
    return parsed


def _parse_entry(entry: object, where: str) -> Detection | _Toggle:
    spec = _mapping(entry, where)
    if isinstance(spec.get("id"), str):
        where = f"{where.rsplit(': ', 1)[0]}: detection {spec['id']!r}"
    if set(spec) == {"id", "enabled"}:
        return _Toggle(_string(spec["id"], f"{where}: id"), _bool(spec["enabled"], where), where)
    return _parse_detection(spec, where)


def _parse_detection(spec: dict[str, Any], where: str) -> Detection:
    _check_keys(spec, _DETECTION_KEYS, where)
    fields = _parse_fields(spec["fields"], f"{where}: fields")
    names = {name for name, _ in fields}
    keys_of = dict(fields)

    def field_keys(name: str) -> tuple[str, ...]:
        return keys_of.get(name, (name,))

    risk = _mapping(spec["risk"], f"{where}: risk")
    _check_keys(risk, _RISK_KEYS, f"{where}: risk")
    impact = _optional_score(risk, "impact", f"{where}: risk")
    confidence = _optional_score(risk, "confidence", f"{where}: risk")
    message = _string(risk["message"], f"{where}: risk: message")
    default_score = _default_score(impact, confidence, f"{where}: risk")
    objects = _parse_objects(risk.get("objects", []), default_score, f"{where}: risk: objects")
    threats = _parse_threats(risk.get("threat_objects", []), f"{where}: risk: threat_objects")

    for token in _TOKEN.findall(message):
        if token not in names:
            raise CatalogError(f"{where}: risk: message: token ${token}$ names no extracted field")
    for item_field in [o.field for o in objects] + [t.field for t in threats]:
        if item_field not in names:
            raise CatalogError(f"{where}: risk: field {item_field!r} is not extracted")
    count_by = _strings(spec.get("count_by", []), f"{where}: count_by")
    for name in count_by:
        if name not in names:
            raise CatalogError(f"{where}: count_by: field {name!r} is not extracted")

    return Detection(
        id=_string(spec["id"], f"{where}: id"),
        name=_string(spec["name"], f"{where}: name"),
        version=_int(spec["version"], f"{where}: version", low=1),
        type=_string(spec["type"], f"{where}: type"),
        ruleset=_string(spec.get("ruleset", "custom"), f"{where}: ruleset"),
        description=_string(spec.get("description", ""), f"{where}: description", empty=True),
        condition=parse_condition(spec["match"], f"{where}: match", field_keys),
        fields=fields,
        count_by=count_by,
        techniques=_parse_techniques(spec.get("mitre_attack", []), f"{where}: mitre_attack"),
        kill_chain_phases=_strings(
            spec.get("kill_chain_phases", []), f"{where}: kill_chain_phases"
        ),
        nist=_strings(spec.get("nist", []), f"{where}: nist"),
        cis20=_strings(spec.get("cis20", []), f"{where}: cis20"),
        analytic_stories=_strings(spec.get("analytic_stories", []), f"{where}: analytic_stories"),
        impact=impact,
        confidence=confidence,
        risk_objects=objects,
        message=message,
        enabled=_bool(spec.get("enabled", True), f"{where}: enabled"),
        references=_strings(spec.get("references", []), f"{where}: references"),
        notes=_string(spec.get("notes", ""), f"{where}: notes", empty=True),
        source=_parse_source(spec.get("source", {"kind": "custom"}), f"{where}: source"),
        threat_objects=threats,
        suppressions=_parse_suppressions(
            spec.get("suppressions", []), f"{where}: suppressions", field_keys
        ),
    )


def _parse_fields(value: object, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    spec = _mapping(value, where)
    if not spec:
        raise CatalogError(f"{where}: at least one field is needed")
    for name in spec:
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise CatalogError(f"{where}: field name {name!r} is not letters, digits, _ and .")
    return tuple(
        (str(name), _strings(keys, f"{where}: {name}", empty=False)) for name, keys in spec.items()
    )


def _parse_techniques(value: object, where: str) -> tuple[Technique, ...]:
    techniques = []
    for i, entry in enumerate(_list(value, where)):
        spec = _mapping(entry, f"{where}: {i + 1}")
        _check_keys(spec, dict.fromkeys(_TECHNIQUE_KEYS, True), f"{where}: {i + 1}")
        technique = Technique(
            **{key: _string(spec[key], f"{where}: {key}") for key in _TECHNIQUE_KEYS}
        )
        if not _TECHNIQUE_ID.fullmatch(technique.technique_id):
            raise CatalogError(
                f"{where}: technique_id {technique.technique_id!r} is not like T1234 or T1234.001"
            )
        if not _TACTIC_ID.fullmatch(technique.tactic_id):
            raise CatalogError(f"{where}: tactic_id {technique.tactic_id!r} is not like TA0002")
        techniques.append(technique)
    return tuple(techniques)


def _default_score(impact: int | None, confidence: int | None, where: str) -> int | None:
    if impact is None or confidence is None:
        return None
    # Rounded to the nearest whole number (halves to even), as Splunk's
    # content tooling computes the score of its older detections.
    score = round(impact * confidence / 100)
    if score < 1:
        raise CatalogError(f"{where}: impact x confidence / 100 rounds to 0; give a score")
    return score


def _parse_objects(value: object, default_score: int | None, where: str) -> tuple[RiskObject, ...]:
    objects = []
    for i, entry in enumerate(_list(value, where)):
        spec = _mapping(entry, f"{where}: {i + 1}")
        _check_keys(spec, {"field": True, "type": True, "score": False}, f"{where}: {i + 1}")
        kind = _choice(spec["type"], RISK_OBJECT_TYPES, f"{where}: type")
        if "score" in spec:
            score = _int(spec["score"], f"{where}: score", low=1, high=100)
        elif default_score is not None:
            score = default_score
        else:
            raise CatalogError(f"{where}: score is needed when risk has no impact and confidence")
        objects.append(RiskObject(_string(spec["field"], f"{where}: field"), kind, score))
    return tuple(objects)


def _parse_threats(value: object, where: str) -> tuple[ThreatObject, ...]:
    threats = []
    for i, entry in enumerate(_list(value, where)):
        spec = _mapping(entry, f"{where}: {i + 1}")
        _check_keys(spec, {"field": True, "type": True}, f"{where}: {i + 1}")
        kind = _choice(spec["type"], THREAT_OBJECT_TYPES, f"{where}: {i + 1}: type")
        threats.append(ThreatObject(_string(spec["field"], f"{where}: field"), kind))
    return tuple(threats)


def _parse_source(value: object, where: str) -> Source:
    spec = _mapping(value, where)
    _check_keys(spec, _SOURCE_KEYS, where)
    return Source(
        kind=_choice(spec["kind"], SOURCE_KINDS, f"{where}: kind"),
        file=_string(spec.get("file", ""), f"{where}: file", empty=True),
        version=_string(spec.get("version", ""), f"{where}: version", empty=True),
    )


def _parse_suppressions(value: object, where: str, field_keys: Any) -> tuple[Suppression, ...]:
    suppressions = []
    names: set[str] = set()
    for i, entry in enumerate(_list(value, where)):
        spec = _mapping(entry, f"{where}: {i + 1}")
        _check_keys(spec, _SUPPRESSION_KEYS, f"{where}: {i + 1}")
        name = _string(spec["name"], f"{where}: {i + 1}: name")
        here = f"{where}: {name!r}"
        if name in names:
            raise CatalogError(f"{here}: name is used twice")
        names.add(name)
        suppressions.append(
            Suppression(
                name=name,
                reason=_string(spec["reason"], f"{here}: reason"),
                condition=parse_condition(spec["when"], f"{here}: when", field_keys),
                expires=_date(spec["expires"], f"{here}: expires") if "expires" in spec else None,
            )
        )
    return tuple(suppressions)


def _date(value: object, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise CatalogError(f"{where}: expected a date like 2026-12-31, got {value!r}")


def _optional_score(spec: Mapping[str, Any], key: str, where: str) -> int | None:
    if key not in spec:
        return None
    return _int(spec[key], f"{where}: {key}", low=1, high=100)


def _check_keys(spec: Mapping[str, Any], known: Mapping[str, bool], where: str) -> None:
    for key in spec:
        if key not in known:
            raise CatalogError(f"{where}: unknown key {key!r}")
    for key, required in known.items():
        if required and key not in spec:
            raise CatalogError(f"{where}: missing key {key!r}")


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CatalogError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise CatalogError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _string(value: object, where: str, empty: bool = False) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise CatalogError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _strings(value: object, where: str, empty: bool = True) -> tuple[str, ...]:
    items = tuple(_string(item, where) for item in _list(value, where))
    if not empty and not items:
        raise CatalogError(f"{where}: expected at least one entry")
    return items


def _choice(value: object, allowed: Sequence[str], where: str) -> str:
    text = _string(value, where)
    if text not in allowed:
        raise CatalogError(f"{where} {text!r} is not one of {', '.join(allowed)}")
    return text


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise CatalogError(f"{where}: expected true or false, got {value!r}")
    return value


def _int(value: object, where: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CatalogError(f"{where}: expected a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        raise CatalogError(f"{where}: {value} is out of range {low}-{high or 'any'}")
    return value
