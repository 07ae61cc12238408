"""MITRE ATT&CK facts, and the annotations Splunk's content tooling derives from them.

The technique table (``data/attack_techniques.json``) holds each technique's
name and tactics from ATT&CK Enterprise 18.1, for the Linux and Containers
platforms and every technique Falco's rule files tag. An id that is not in it
is reported by the importers, never guessed.

Derived annotations, as Splunk's content tooling computes them: each tactic
maps to one Lockheed Martin kill chain phase; NIST CSF is DE.CM for a TTP
detection and DE.AE otherwise; CIS control 13 for the network security domain
and 10 otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

# ATT&CK Enterprise tactics: short name -> (display name, id).
TACTICS: Final = {
    "reconnaissance": ("Reconnaissance", "TA0043"),
    "resource-development": ("Resource Development", "TA0042"),
    "initial-access": ("Initial Access", "TA0001"),
    "execution": ("Execution", "TA0002"),
    "persistence": ("Persistence", "TA0003"),
    "privilege-escalation": ("Privilege Escalation", "TA0004"),
    "defense-evasion": ("Defense Evasion", "TA0005"),
    "credential-access": ("Credential Access", "TA0006"),
    "discovery": ("Discovery", "TA0007"),
    "lateral-movement": ("Lateral Movement", "TA0008"),
    "collection": ("Collection", "TA0009"),
    "command-and-control": ("Command and Control", "TA0011"),
    "exfiltration": ("Exfiltration", "TA0010"),
    "impact": ("Impact", "TA0040"),
}

KILL_CHAIN_PHASES: Final = {
    "reconnaissance": "Reconnaissance",
    "resource-development": "Weaponization",
    "initial-access": "Delivery",
    "execution": "Installation",
    "persistence": "Installation",
    "privilege-escalation": "Exploitation",
    "defense-evasion": "Exploitation",
    "credential-access": "Exploitation",
    "discovery": "Exploitation",
    "lateral-movement": "Exploitation",
    "collection": "Exploitation",
    "command-and-control": "Command and Control",
    "exfiltration": "Actions on Objectives",
    "impact": "Actions on Objectives",
}


@dataclass(frozen=True)
class Tactic:
    """An ATT&CK tactic by its short name, display name and id."""

    short: str
    name: str
    id: str


@dataclass(frozen=True)
class AttackTechnique:
    """An ATT&CK technique: its id, name and the tactics it serves."""

    id: str
    name: str
    tactics: tuple[Tactic, ...]


@cache
def _techniques() -> dict[str, tuple[str, list[str]]]:
    text = resources.files("falco_risk").joinpath("data", "attack_techniques.json").read_text()
    table: dict[str, tuple[str, list[str]]] = json.loads(text)["techniques"]
    return table


def attack_version() -> str:
    """The ATT&CK release the technique table comes from."""
    text = resources.files("falco_risk").joinpath("data", "attack_techniques.json").read_text()
    version: str = json.loads(text)["attack"]
    return version


def technique(technique_id: str) -> AttackTechnique | None:
    """The technique with this id, or None when the table does not know it."""
    entry = _techniques().get(technique_id)
    if entry is None:
        return None
    name, shorts = entry
    return AttackTechnique(technique_id, name, tuple(tactic(short) for short in shorts))


def tactic(short: str) -> Tactic:
    """The tactic with this short name (``privilege-escalation``)."""
    name, tactic_id = TACTICS[short]
    return Tactic(short, name, tactic_id)


def tactic_from_tag(tag: str) -> Tactic | None:
    """The tactic a Falco tag names (``mitre_privilege_escalation`` or ``TA0004``), if any."""
    if tag.startswith("mitre_"):
        short = tag[len("mitre_") :].replace("_", "-")
        return tactic(short) if short in TACTICS else None
    for short, (_, tactic_id) in TACTICS.items():
        if tag == tactic_id:
            return tactic(short)
    return None


def kill_chain_phases(tactics: list[Tactic]) -> list[str]:
    """The kill chain phases of the tactics, sorted and without repeats."""
    return sorted({KILL_CHAIN_PHASES[t.short] for t in tactics})


def nist_for_type(detection_type: str) -> list[str]:
    """The NIST CSF category of a detection of this type."""
    return ["DE.CM"] if detection_type == "TTP" else ["DE.AE"]


def cis_for_domain(security_domain: str) -> list[str]:
    """The CIS control of a detection in this security domain."""
    return ["CIS 13"] if security_domain == "network" else ["CIS 10"]
