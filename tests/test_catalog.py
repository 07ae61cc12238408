"""Tests for loading and validating detection catalogs."""

from pathlib import Path

import pytest

from falco_risk.catalog import load_catalog
from falco_risk.errors import CatalogError

SEED_ID = "d2feef92-d54a-4a19-8306-b47c6ceba5b2"

MINIMAL = """
detections:
  - id: custom-1
    name: Custom
    version: 2
    type: TTP
    match: {phrase: Something happened}
    fields: {user: [user.name, user]}
    risk:
      objects: [{field: user, type: user, score: 30}]
      message: Something by $user$.
"""


def write(tmp_path: Path, text: str, name: str = "catalog.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_seed_detection_is_the_default() -> None:
    """Without catalog paths the packaged seed detection is loaded with Splunk's values."""
    catalog = load_catalog()

    (seed,) = catalog.detections
    assert seed.id == SEED_ID
    assert seed.name == "Kubernetes Falco Shell Spawned"
    assert seed.version == 1
    assert (seed.impact, seed.confidence) == (70, 70)
    assert [(o.field, o.type, o.score) for o in seed.risk_objects] == [("user", "user", 49)]
    assert [t.technique_id for t in seed.techniques] == ["T1204"]
    assert seed.count_by == (
        "container_image",
        "container_image_tag",
        "container_name",
        "parent",
        "proc_exepath",
        "process",
        "user",
    )
    assert catalog.needles == frozenset({b"a shell was spawned in a container"})


def test_directory_loads_every_yaml_file_in_name_order(tmp_path: Path) -> None:
    """A directory contributes its .yaml and .yml files, sorted by name."""
    write(tmp_path, MINIMAL, "b.yaml")
    write(tmp_path, MINIMAL.replace("custom-1", "custom-0"), "a.yml")
    write(tmp_path, "not a catalog", "notes.txt")

    catalog = load_catalog([str(tmp_path)])

    assert [d.id for d in catalog.detections] == [SEED_ID, "custom-0", "custom-1"]


def test_explicit_score_overrides_impact_and_confidence(tmp_path: Path) -> None:
    """A risk object's own score is used as given."""
    catalog = load_catalog([write(tmp_path, MINIMAL)])

    assert catalog.detections[-1].risk_objects[0].score == 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("name: Custom", "nmae: Custom"), "detection 'custom-1': unknown key 'nmae'"),
        (("score: 30", "score: 300"), "score: 300 is out of range 1-100"),
        (("by $user$", "by $who$"), r"token \$who\$ names no extracted field"),
        (("type: user, score", "type: person, score"), "type 'person' is not one of"),
        (("version: 2", "version: two"), "version: expected a whole number"),
    ],
)
def test_invalid_detection_is_refused_with_file_detection_and_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    """Validation errors name the file, the detection and the offending key."""
    path = write(tmp_path, MINIMAL.replace(*change))

    with pytest.raises(CatalogError, match=message) as caught:
        load_catalog([path])

    assert str(caught.value).startswith(path)


def test_bad_technique_id_is_refused(tmp_path: Path) -> None:
    """ATT&CK ids must look like T1234 or T1234.001."""
    text = MINIMAL + (
        "    mitre_attack:\n"
        "      - {technique_id: X1204, technique: T, tactic: Execution, tactic_id: TA0002}\n"
    )

    with pytest.raises(CatalogError, match="technique_id 'X1204'"):
        load_catalog([write(tmp_path, text)])


def test_duplicate_ids_in_one_file_are_refused(tmp_path: Path) -> None:
    """Two detections in one file may not share an id."""
    second = MINIMAL.split("detections:\n", 1)[1]
    path = write(tmp_path, MINIMAL + second)

    with pytest.raises(CatalogError, match="defined twice in one file"):
        load_catalog([path])


def test_missing_file_is_reported(tmp_path: Path) -> None:
    """An unreadable catalog path is a catalog error, not a crash."""
    with pytest.raises(CatalogError, match="cannot read catalog"):
        load_catalog([str(tmp_path / "absent.yaml")])
