"""Load and validate detection catalogs.

A catalog file is YAML with a top-level ``detections`` list. Validation is
strict: an unknown key, a missing key or a value of the wrong shape stops the
load with one line naming the file, the detection and the key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from falco_risk.detection import Detection, RiskObject, Technique
from falco_risk.errors import CatalogError
from falco_risk.match import Condition, Phrase

logger = logging.getLogger(__name__)

SEED_FILE = "kubernetes_falco_shell_spawned.yaml"

_TECHNIQUE_ID = re.compile(r"T\d{4}(\.\d{3})?")
_TACTIC_ID = re.compile(r"TA\d{4}")
_TOKEN = re.compile(r"\$([A-Za-z0-9_.]+)\$")

_DETECTION_KEYS = {
    "id": True,
    "name": True,
    "version": True,
    "type": True,
    "ruleset": False,
    "description": False,
    "match": True,
    "fields": True,
    "count_by": False,
    "mitre_attack": False,
    "kill_chain_phases": False,
    "nist": False,
    "cis20": False,
    "analytic_stories": False,
    "risk": True,
}
_RISK_KEYS = {"impact", "confidence", "objects", "message"}
_TECHNIQUE_KEYS = {"technique_id", "technique", "tactic", "tactic_id"}
_OBJECT_KEYS = {"field", "type", "score"}
RISK_OBJECT_TYPES = ("user", "system", "other")


@dataclass(frozen=True)
class Catalog:
    """The detections in force, in the order they were loaded."""

    detections: tuple[Detection, ...]

    @property
    def needles(self) -> frozenset[bytes] | None:
        """Byte strings a request must contain to hold a candidate, or None for 'always decode'."""
        found: set[bytes] = set()
        for detection in self.detections:
            needles = detection.condition.needles()
            if needles is None:
                return None
            found |= needles
        return frozenset(found)


def load_catalog(paths: Sequence[str] = ()) -> Catalog:
    """Load the given files and directories, or the seed detection when none are given."""
    if not paths:
        seed = resources.files("falco_risk").joinpath("detections", SEED_FILE)
        return Catalog(tuple(_parse_file(seed.read_text(encoding="utf-8"), SEED_FILE)))

    detections: list[Detection] = []
    for path in _expand(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogError(f"{path}: cannot read catalog: {exc.strerror}") from exc
        detections.extend(_parse_file(text, str(path)))

    seen: set[str] = set()
    for detection in detections:
        if detection.id in seen:
            raise CatalogError(f"detection id {detection.id!r} is defined twice")
        seen.add(detection.id)
    return Catalog(tuple(detections))


def _expand(paths: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    return files


def _parse_file(text: str, where: str) -> list[Detection]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or set(document) != {"detections"}:
        raise CatalogError(f"{where}: a catalog is a mapping with one key, 'detections'")
    entries = document["detections"]
    if not isinstance(entries, list):
        raise CatalogError(f"{where}: 'detections' must be a list")
    return [
        _parse_detection(entry, f"{where}: detection {i + 1}") for i, entry in enumerate(entries)
    ]


def _parse_detection(entry: object, where: str) -> Detection:
    spec = _mapping(entry, where)
    if isinstance(spec.get("id"), str):
        where = f"{where.rsplit(': ', 1)[0]}: detection {spec['id']!r}"
    _check_keys(spec, _DETECTION_KEYS, where)

    fields = _parse_fields(spec["fields"], f"{where}: fields")
    risk = _mapping(spec["risk"], f"{where}: risk")
    _check_keys(risk, {key: key == "message" for key in _RISK_KEYS}, f"{where}: risk")
    impact = _optional_score(risk, "impact", f"{where}: risk")
    confidence = _optional_score(risk, "confidence", f"{where}: risk")
    message = _string(risk["message"], f"{where}: risk: message")
    default_score = impact * confidence // 100 if impact and confidence else None
    objects = _parse_objects(risk.get("objects", []), default_score, f"{where}: risk: objects")

    names = {name for name, _ in fields}
    for token in _TOKEN.findall(message):
        if token not in names:
            raise CatalogError(f"{where}: risk: message: token ${token}$ names no extracted field")
    for item in objects:
        if item.field not in names:
            raise CatalogError(f"{where}: risk: objects: field {item.field!r} is not extracted")
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
        condition=_parse_match(spec["match"], f"{where}: match"),
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
    )


def _parse_match(value: object, where: str) -> Condition:
    spec = _mapping(value, where)
    _check_keys(spec, {"phrase": True}, where)
    return Phrase(_string(spec["phrase"], f"{where}: phrase"))


def _parse_fields(value: object, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    spec = _mapping(value, where)
    if not spec:
        raise CatalogError(f"{where}: at least one field is needed")
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


def _parse_objects(value: object, default_score: int | None, where: str) -> tuple[RiskObject, ...]:
    objects = []
    for i, entry in enumerate(_list(value, where)):
        spec = _mapping(entry, f"{where}: {i + 1}")
        _check_keys(spec, {"field": True, "type": True, "score": False}, f"{where}: {i + 1}")
        kind = _string(spec["type"], f"{where}: type")
        if kind not in RISK_OBJECT_TYPES:
            raise CatalogError(
                f"{where}: type {kind!r} is not one of {', '.join(RISK_OBJECT_TYPES)}"
            )
        if "score" in spec:
            score = _int(spec["score"], f"{where}: score", low=1, high=100)
        elif default_score is not None:
            score = default_score
        else:
            raise CatalogError(f"{where}: score is needed when risk has no impact and confidence")
        objects.append(RiskObject(_string(spec["field"], f"{where}: field"), kind, score))
    return tuple(objects)


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


def _int(value: object, where: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CatalogError(f"{where}: expected a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        raise CatalogError(f"{where}: {value} is out of range {low}-{high or 'any'}")
    return value
