"""Tests for loading and validating detection catalogs."""

import datetime as dt
import json
import logging
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from falco_risk.catalog import SEED_FILE, load_catalog
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


SUPPRESSED = """
detections:
  - id: custom-1
    name: Custom
    version: 1
    type: TTP
    match: {rule: Terminal shell in container}
    fields: {user: [user.name], namespace: [k8s.ns.name]}
    risk:
      objects: [{field: user, type: user, score: 30}]
      message: Something by $user$.
    suppressions:
      - name: ci
        reason: CI runners open shells by design
        expires: 2020-01-31
        when: {field: {name: namespace, equals: ci}}
"""


def test_user_detection_with_the_seed_id_replaces_the_seed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A later detection with an earlier id takes its place, and the replacement is logged."""
    path = write(tmp_path, MINIMAL.replace("custom-1", SEED_ID))

    with caplog.at_level(logging.INFO, logger="falco_risk.catalog"):
        catalog = load_catalog([path])

    (only,) = catalog.detections
    assert (only.id, only.name, only.risk_score) == (SEED_ID, "Custom", 30)
    assert "replaced by Custom version 2" in caplog.text


def test_id_and_enabled_alone_switch_the_seed_off(tmp_path: Path) -> None:
    """An entry with only id and enabled: false disables the seed."""
    path = write(tmp_path, f"detections:\n  - {{id: {SEED_ID}, enabled: false}}\n")

    catalog = load_catalog([path])

    assert [d.enabled for d in catalog.detections] == [False]
    assert catalog.enabled == ()
    assert catalog.needles == frozenset()


def test_switching_an_unknown_id_is_refused(tmp_path: Path) -> None:
    """A toggle must name an earlier detection, so a typo does not pass silently."""
    path = write(tmp_path, "detections:\n  - {id: no-such-id, enabled: false}\n")

    with pytest.raises(CatalogError, match="no earlier detection has this id"):
        load_catalog([path])


def test_expired_suppression_is_logged_once_at_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A suppression past its expiry date is reported when the catalog loads."""
    path = write(tmp_path, SUPPRESSED)

    with caplog.at_level(logging.WARNING, logger="falco_risk.catalog"):
        catalog = load_catalog([path])

    (suppression,) = catalog.detections[-1].suppressions
    assert suppression.expires == dt.date(2020, 1, 31)
    assert suppression.expired(dt.datetime(2020, 2, 1, tzinfo=dt.UTC).timestamp())
    assert not suppression.expired(dt.datetime(2020, 1, 31, 23, tzinfo=dt.UTC).timestamp())
    assert caplog.text.count("suppression 'ci' of detection 'custom-1' expired on 2020-01-31") == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("reason: CI runners open shells by design", "why: CI"), "unknown key 'why'"),
        (("expires: 2020-01-31", "expires: soon"), "expected a date"),
        (("equals: ci}", "regex: '(ci'}"), "invalid regular expression"),
        (("{rule: Terminal shell in container}", "{rules: x}"), "unknown key 'rules'"),
    ],
)
def test_invalid_suppression_or_match_is_refused(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    """Suppressions and conditions are validated as strictly as the rest."""
    path = write(tmp_path, SUPPRESSED.replace(*change))

    with pytest.raises(CatalogError, match=message):
        load_catalog([path])


def test_version_is_a_hash_of_the_files(tmp_path: Path) -> None:
    """The catalog version changes with the content of its files and only then."""
    path = write(tmp_path, MINIMAL)
    first = load_catalog([path]).version

    again = load_catalog([path]).version
    Path(path).write_text(MINIMAL.replace("score: 30", "score: 31"))

    assert again == first
    assert load_catalog([path]).version != first
    assert load_catalog().version != first


def _json_ready(value: object) -> object:
    """YAML dates as the ISO strings JSON documents carry."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value.isoformat() if isinstance(value, dt.date) else value


SCHEMA = json.loads(
    resources.files("falco_risk").joinpath("detections", "catalog.schema.json").read_text()
)
TESTDATA = Path(__file__).parent / "testdata" / "catalog"


@pytest.mark.parametrize(
    "text",
    [
        resources.files("falco_risk").joinpath("detections", SEED_FILE).read_text(),
        MINIMAL,
        SUPPRESSED,
        f"detections:\n  - {{id: {SEED_ID}, enabled: false}}\n",
    ],
)
def test_json_schema_accepts_what_the_loader_accepts(tmp_path: Path, text: str) -> None:
    """The published JSON Schema agrees with the loader on valid catalogs."""
    load_catalog([write(tmp_path, text)])

    errors = list(
        jsonschema.Draft202012Validator(SCHEMA).iter_errors(_json_ready(yaml.safe_load(text)))
    )

    assert errors == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (("name: Custom", "nmae: Custom"), "detections/0"),
        (("score: 30", "score: 300"), "detections/0"),
        (("type: user, score", "type: person, score"), "detections/0"),
        (("{phrase: Something happened}", "{phrase: x, bogus: 1}"), "detections/0"),
    ],
)
def test_json_schema_refuses_what_the_loader_refuses(
    tmp_path: Path, change: tuple[str, str], path: str
) -> None:
    """Invalid catalogs fail both the loader and the JSON Schema."""
    text = MINIMAL.replace(*change)

    with pytest.raises(CatalogError):
        load_catalog([write(tmp_path, text)])
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(yaml.safe_load(text)))

    assert errors
