"""The in-memory form of a detection, as the catalog loads it."""

from __future__ import annotations

from dataclasses import dataclass

from falco_risk.match import Condition
from falco_risk.suppress import Suppression


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
class ThreatObject:
    """An artefact of the activity (a process, a file, a command) named by one extracted field."""

    field: str
    type: str


@dataclass(frozen=True)
class Source:
    """Where a detection came from: an ESCU file, a Falco rules file, or written by hand."""

    kind: str
    file: str = ""
    version: str = ""


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
    enabled: bool = True
    references: tuple[str, ...] = ()
    notes: str = ""
    source: Source = Source("custom")
    threat_objects: tuple[ThreatObject, ...] = ()
    suppressions: tuple[Suppression, ...] = ()

    @property
    def risk_score(self) -> int:
        """The highest score of its risk objects (0 without any), as Splunk rates a detection."""
        return max((item.score for item in self.risk_objects), default=0)

    @property
    def risk_object(self) -> RiskObject | None:
        """The risk object a tagged record names: the highest scored, the first of equals."""
        best: RiskObject | None = None
        for item in self.risk_objects:
            if best is None or item.score > best.score:
                best = item
        return best
