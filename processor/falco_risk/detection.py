"""The in-memory form of a detection, as the catalog loads it."""

from __future__ import annotations

from dataclasses import dataclass

from falco_risk.match import Condition


@dataclass(frozen=True)
class Technique:
    """A MITRE ATT&CK technique with the tactic it serves."""

    technique_id: str
    technique: str
    tactic: str
    tactic_id: str


@dataclass(frozen=True)
class RiskObject:
    """The entity a risk event is about: the value of one extracted field."""

    field: str
    type: str
    score: int


@dataclass(frozen=True)
class Detection:
    """One detection: what it matches, what it extracts, what it says about risk."""

    id: str
    name: str
    version: int
    type: str
    ruleset: str
    description: str
    condition: Condition
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    count_by: tuple[str, ...]
    techniques: tuple[Technique, ...]
    kill_chain_phases: tuple[str, ...]
    nist: tuple[str, ...]
    cis20: tuple[str, ...]
    analytic_stories: tuple[str, ...]
    impact: int | None
    confidence: int | None
    risk_objects: tuple[RiskObject, ...]
    message: str
