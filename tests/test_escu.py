"""Tests for importing Splunk ESCU detections in both formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from falco_risk.catalog import load_catalog
from falco_risk.enrich import extract, render
from falco_risk.escu import EscuError, import_escu
from falco_risk.falco import FalcoAlert, read_alert
from falco_risk.importing import dump_catalog
from falco_risk.search import translate_search
from falco_risk.tagger import Tagger
from otlp_builders import falco_json
from test_tagger import EXPECTED_SEED_ATTRIBUTES, SHELL_FIELDS, SHELL_OUTPUT

TESTDATA = Path(__file__).parent / "testdata" / "catalog"
MESSAGE = "A shell is spawned in the container $container_name$ by user $user$."


def imported(tmp_path: Path, name: str) -> Path:
    result = import_escu([str(TESTDATA / name)])
    path = tmp_path / "imported.yaml"
    path.write_text(dump_catalog(result, "test import"))
    return path


def test_tags_format_seed_imports_with_score_49(tmp_path: Path) -> None:
    """The version 1 fixture (tags: impact 70, confidence 70) gives risk score 49."""
    catalog = load_catalog([str(imported(tmp_path, "escu_shell_v1.yml"))])

    (detection,) = catalog.detections
    assert (detection.version, detection.risk_score, detection.message) == (1, 49, MESSAGE)
    assert (detection.impact, detection.confidence) == (70, 70)
    assert detection.source.kind == "escu"


def test_rba_format_seed_imports_with_score_20(tmp_path: Path) -> None:
    """The version 8 fixture (rba: one risk object scored 20) gives 20 and the same message."""
    catalog = load_catalog([str(imported(tmp_path, "escu_shell_v8.yml"))])

    (detection,) = catalog.detections
    assert (detection.version, detection.risk_score, detection.message) == (8, 20, MESSAGE)
    assert [(t.field, t.type) for t in detection.threat_objects] == [("process", "process_name")]


def test_imported_seed_tags_an_alert_as_the_shipped_seed_does(tmp_path: Path) -> None:
    """Every attribute the shipped seed derives is derived the same way from the ESCU file."""
    catalog = load_catalog([str(imported(tmp_path, "escu_shell_v1.yml"))])
    alert = Tagger(catalog).judge(read(falco_json(SHELL_OUTPUT, **SHELL_FIELDS)), {}).winner
    assert alert is not None

    rendered = render(alert, extract(alert, read(falco_json(SHELL_OUTPUT, **SHELL_FIELDS))))

    for key, value in rendered.items():
        assert value == EXPECTED_SEED_ATTRIBUTES[key], key
    assert {"command", "k8s_ns"}.isdisjoint(rendered)  # ESCU names only its own fields


def test_untranslated_search_parts_disable_the_detection_and_are_reported(
    tmp_path: Path,
) -> None:
    """A where clause, an unknown ATT&CK id and an alias-less field are reported, not guessed."""
    result = import_escu([str(TESTDATA / "escu_partial.yml")])

    (entry,) = result.detections
    assert entry["enabled"] is False
    assert '| where user!="root"' in entry["notes"]
    assert [t["technique_id"] for t in entry["mitre_attack"]] == ["T1555"]
    assert entry["fields"]["dest_zone"] == ["dest_zone"]
    assert entry["nist"] == ["DE.CM"]
    assert entry["cis20"] == ["CIS 10"]
    assert entry["kill_chain_phases"] == ["Exploitation"]
    assert entry["risk"]["threat_objects"] == [{"field": "process", "type": "process"}]
    report = "\n".join(result.report)
    assert 'search part not translated: | where user!="root"' in report
    assert "ATT&CK id T9999 is not in the technique table" in report
    assert "field 'dest_zone' has no Falco alias" in report


def test_search_translation_lists_what_it_understood() -> None:
    """Macro, phrase, fillnull, stats by and the filter macro translate; other words do not."""
    out = translate_search(
        '`kube_container_falco` "A shell" rule="Terminal shell in container" bash '
        "| fillnull | stats count min(_time) as firstTime by user, process "
        "| `security_content_ctime(firstTime)` | `x_filter` | eval a=1"
    )

    assert out.condition == {
        "all": [{"phrase": "A shell"}, {"rule": "Terminal shell in container"}]
    }
    assert out.count_by == ["user", "process"]
    assert out.filter_macro == "x_filter"
    assert out.untranslated == ["bash", "| eval a=1"]


def test_file_that_is_not_a_detection_is_an_error(tmp_path: Path) -> None:
    """Something other than an ESCU detection is refused with its name."""
    path = tmp_path / "story.yml"
    path.write_text("name: A story\nnarrative: text\n")

    with pytest.raises(EscuError, match=r"story\.yml: not an ESCU detection"):
        import_escu([str(path)])


def read(body: str) -> FalcoAlert:
    found = read_alert(body, {})
    assert found is not None
    return found


def test_value_of_the_wrong_shape_is_an_error_naming_the_file(tmp_path: Path) -> None:
    """A detection whose version is not a number is refused, not a crash."""
    path = tmp_path / "odd.yml"
    path.write_text("name: x\nid: y\nversion: v2\ntype: TTP\nsearch: '\"a phrase\"'\n")

    with pytest.raises(EscuError, match=r"odd\.yml: cannot import: ValueError"):
        import_escu([str(path)])
