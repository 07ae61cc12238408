"""Tests for rendering a detection's attributes."""

import dataclasses

from falco_risk.catalog import load_catalog
from falco_risk.enrich import render
from falco_risk.falco import FieldValue


def fields(**values: str) -> dict[str, FieldValue]:
    """Extracted fields as extract() returns them."""
    return {name: FieldValue(value, f"output_fields[{name}]") for name, value in values.items()}


def test_render_message_fills_tokens_anywhere_and_per_alert() -> None:
    """Tokens at the ends, side by side or repeated are filled from each alert's own values."""
    seed = load_catalog().detections[0]
    detection = dataclasses.replace(seed, message="$user$$process$ ran $process$ as $user$")

    first = render(detection, fields(user="root", process="bash"))
    second = render(detection, fields(user="app"))

    assert first["risk_message"] == "rootbash ran bash as root"
    assert second["risk_message"] == "appunknown ran unknown as app"


def test_render_static_attributes_follow_the_detection() -> None:
    """Two detections that differ only in identity get their own rule attributes."""
    seed = load_catalog().detections[0]
    other = dataclasses.replace(seed, id="other-id", name="Other", nist=("PR.AC",))

    seed_values = render(seed, fields(user="root"))
    other_values = render(other, fields(user="root"))

    assert seed_values["security_rule.uuid"] == seed.id
    assert other_values["security_rule.uuid"] == "other-id"
    assert other_values["security_rule.name"] == "Other"
    assert other_values["annotations.nist"] == ["PR.AC"]
    assert seed_values["annotations.nist"] == ["DE.AE"]
