"""Tests for importing Falco rule files of both output generations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from falco_risk.catalog import load_catalog
from falco_risk.falco_rules import import_falco_rules, parse_priority_scores
from falco_risk.importing import dump_catalog

TESTDATA = Path(__file__).parent / "testdata" / "catalog"
OLD = str(TESTDATA / "falco_rules_old.yaml")
NEW = str(TESTDATA / "falco_rules_new.yaml")


def by_name(detections: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in detections}


def test_old_generation_rules_become_detections() -> None:
    """Parenthesised outputs, %container.info, tags and priority give fields, ATT&CK and score."""
    result = import_falco_rules([OLD])

    shell = by_name(result.detections)["Terminal shell in container"]
    assert shell["match"] == {"rule": "Terminal shell in container"}
    assert shell["fields"]["user"] == ["user.name", "user"]
    assert shell["fields"]["gparent"] == ["proc.aname[2]", "gparent"]
    assert shell["fields"]["container_image"] == ["container.image.repository", "container_image"]
    assert shell["mitre_attack"] == [
        {
            "technique_id": "T1059",
            "technique": "Command and Scripting Interpreter",
            "tactic": "Execution",
            "tactic_id": "TA0002",
        }
    ]
    assert shell["kill_chain_phases"] == ["Installation"]
    assert shell["risk"]["objects"] == [{"field": "user", "type": "user", "score": 30}]
    assert shell["risk"]["message"] == (
        "A shell was spawned in a container with an attached terminal "
        "(user=$user$, process=$process$, container_name=$container_name$)"
    )
    assert shell["source"] == {
        "kind": "falco_rules",
        "file": "falco_rules_old.yaml",
        "version": "0.31.0",
    }


def test_rules_that_cannot_be_imported_are_reported() -> None:
    """Rules without technique tags and disabled rules are left out and said so."""
    result = import_falco_rules([OLD])

    assert set(by_name(result.detections)) == {
        "Terminal shell in container",
        "Read sensitive file untrusted",
        "Contact K8S API Server From Container",
    }
    report = "\n".join(result.report)
    assert "rule 'Clear Log Activities': no ATT&CK technique tag; skipped" in report
    assert "rule 'Old Rule Turned Off': disabled in the rules files; skipped" in report
    assert "rule 'Read sensitive file untrusted': condition or exceptions changed" in report


def test_disagreements_are_written_into_notes() -> None:
    """A tactic ATT&CK does not list and an overlap with the seed's T1204 are both noted."""
    found = by_name(import_falco_rules([OLD]).detections)

    api = found["Contact K8S API Server From Container"]
    assert api["mitre_attack"][0]["tactic"] == "Discovery"
    assert (
        "Falco tags T1565 with Discovery; ATT&CK lists Data Manipulation under Impact"
        in api["notes"]
    )
    shell_notes = found["Terminal shell in container"]["notes"]
    assert "maps them to T1204 where Falco's tags say T1059" in shell_notes
    assert "{id: d2feef92-d54a-4a19-8306-b47c6ceba5b2, enabled: false}" in shell_notes


def test_new_generation_rules_with_overrides_and_toggles() -> None:
    """Pipe outputs, bare %fields, override appends and enabled: false toggles are applied."""
    result = import_falco_rules([NEW], parse_priority_scores("warning=65"))

    found = by_name(result.detections)
    shell = found["Terminal shell in container"]
    assert [t["technique_id"] for t in shell["mitre_attack"]] == ["T1059", "T1059.004"]
    assert shell["risk"]["objects"][0]["score"] == 65
    assert shell["fields"]["proc_exepath"] == ["proc.exepath", "proc_exepath"]
    shm = found["Execution from /dev/shm"]
    assert shm["fields"] == {"proc_name": ["proc.name"], "proc_exepath": ["proc.exepath"]}
    assert shm["risk"]["objects"] == [{"field": "proc_name", "type": "other", "score": 65}]
    assert "PTRACE attached to process" not in found


def test_imported_catalog_loads_beside_the_seed(tmp_path: Path) -> None:
    """The written catalog loads, and the seed stays first."""
    path = tmp_path / "falco.yaml"
    path.write_text(dump_catalog(import_falco_rules([OLD, NEW]), "test"))

    catalog = load_catalog([str(path)])

    assert catalog.detections[0].name == "Kubernetes Falco Shell Spawned"
    assert len(catalog.detections) == 5
    assert catalog.needles is not None


@pytest.mark.parametrize("text", ["loud=5", "notice=0", "notice", "warning=x"])
def test_bad_priority_scores_are_refused(text: str) -> None:
    """The score table override accepts only PRIORITY=1..100."""
    with pytest.raises(ValueError, match=r"PRIORITY=SCORE|1 to 100"):
        parse_priority_scores(text)
