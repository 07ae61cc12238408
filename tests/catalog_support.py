"""Helpers for catalog tests: detections built in code, alerts read from bodies."""

from __future__ import annotations

from falco_risk.catalog import Catalog
from falco_risk.detection import Detection, RiskObject
from falco_risk.falco import FalcoAlert, read_alert
from falco_risk.match import Condition


def detection(
    condition: Condition, ident: str = "d-1", score: int = 10, name: str | None = None
) -> Detection:
    """A minimal enabled detection extracting the user, with one risk object."""
    return Detection(
        id=ident,
        name=name or ident,
        version=1,
        type="TTP",
        ruleset="test",
        description="",
        condition=condition,
        fields=(("user", ("user.name", "user")),),
        count_by=(),
        techniques=(),
        kill_chain_phases=(),
        nist=(),
        cis20=(),
        analytic_stories=(),
        impact=None,
        confidence=None,
        risk_objects=(RiskObject("user", "user", score),),
        message="By $user$.",
    )


def catalog_of(*detections: Detection) -> Catalog:
    """A catalog holding exactly these detections."""
    return Catalog(tuple(detections), version="test")


def alert(body: str) -> FalcoAlert:
    """The alert a string body holds; fails the test when it holds none."""
    found = read_alert(body, {})
    assert found is not None
    return found
