"""Tests for the catalog commands: check, tag, explain, import-escu and import-falco-rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from falco_risk.cli import main

TESTDATA = Path(__file__).parent / "testdata" / "catalog"
ALERTS = str(TESTDATA / "alerts.jsonl")
SEED_ID = "d2feef92-d54a-4a19-8306-b47c6ceba5b2"
SUPPRESSING = f"""
detections:
  - id: {SEED_ID}
    name: Kubernetes Falco Shell Spawned
    version: 8
    type: Anomaly
    match: {{phrase: A shell was spawned in a container}}
    fields: {{user: [user.name, user], container_name: [container.name], namespace: [k8s.ns.name]}}
    risk:
      objects: [{{field: user, type: user, score: 20}}]
      message: A shell is spawned in the container $container_name$ by user $user$.
    suppressions:
      - name: ci-namespace
        reason: CI jobs open shells
        when: {{field: {{name: namespace, equals: ci}}}}
"""


@pytest.mark.parametrize(
    "command", ["check", "tag", "explain", "import-escu", "import-falco-rules", "serve"]
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--help works on every command and exits 0."""
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])

    assert exited.value.code == 0
    assert f"usage: falco-risk {command}" in capsys.readouterr().out


def test_check_prints_the_detections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check lists id, name, version, score, techniques and enabled for each detection."""
    code = main(["check"])

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].split() == ["ID", "NAME", "VERSION", "SCORE", "TECHNIQUES", "ENABLED"]
    assert out[1].split() == [
        SEED_ID,
        "Kubernetes",
        "Falco",
        "Shell",
        "Spawned",
        "1",
        "49",
        "T1204",
        "yes",
    ]
    assert out[2].startswith("catalog ")
    assert "1 detection(s), 1 enabled" in out[2]


def test_check_refuses_a_bad_catalog_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad catalog exits 2 with a single line naming file, detection and key."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(SUPPRESSING.replace("score: 20", "score: 0"))

    code = main(["check", str(bad)])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        f"falco-risk: {bad}: detection '{SEED_ID}': risk: objects: score: 0 is out of range 1-100"
    ]


def test_tag_prints_one_otlp_line_per_input_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Each input line comes out as an OTLP JSON request; alerts carry the attributes."""
    code = main(["tag", ALERTS])

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert len(lines) == 4
    first = lines[0]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["attributes"]
    found = {a["key"]: a["value"] for a in first}
    assert found["risk_score"] == {"stringValue": "49"}
    assert found["container_name"] == {"stringValue": "web"}
    plain = lines[1]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert "attributes" not in plain


def test_tag_table_with_catalog_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--table shows rule, container, user, score and message, and a summary by detection."""
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(SUPPRESSING)
    monkeypatch.setenv("FALCO_RISK_CATALOG", str(catalog))

    code = main(["tag", "--table", ALERTS])

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].split() == ["RULE", "CONTAINER", "USER", "SCORE", "MESSAGE"]
    assert out[1].split()[:8] == ["Terminal", "shell", "in", "container", "web", "root", "20", "A"]
    assert len([line for line in out if line.startswith("Terminal shell")]) == 1
    assert out[-2].split()[-1] == "1"
    assert out[-1] == "4 record(s) read, 1 tagged"


def test_explain_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """explain names the match, field origins, the non-alert, the failed part, the suppression."""
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(SUPPRESSING)

    code = main(["explain", "--catalog", str(catalog), ALERTS])

    out = capsys.readouterr().out
    assert code == 0
    assert "MATCHED, its attributes are added: 'Kubernetes Falco Shell Spawned'" in out
    assert "user = 'root' from output_fields[user.name]" in out
    assert "not a Falco alert" in out
    assert "the alert text does not contain the phrase 'A shell was spawned in a container'" in out
    assert "suppressed: 'Kubernetes Falco Shell Spawned'" in out
    assert "by 'ci-namespace' (CI jobs open shells)" in out


def test_import_escu_writes_a_loadable_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """import-escu -o writes the catalog; check then loads it with the imported score."""
    out = tmp_path / "escu.yaml"

    code = main(["import-escu", str(TESTDATA / "escu_shell_v8.yml"), "-o", str(out)])
    capsys.readouterr()
    main(["check", str(out)])

    assert code == 0
    assert out.read_text().startswith("# Imported by `falco-risk import-escu`")
    assert " 8 " in capsys.readouterr().out.splitlines()[1]


def test_import_falco_rules_reports_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """import-falco-rules prints the catalog and its notes go to stderr."""
    code = main(
        [
            "import-falco-rules",
            str(TESTDATA / "falco_rules_old.yaml"),
            "--priority-scores",
            "notice=40",
        ]
    )

    captured = capsys.readouterr()
    assert code == 0
    assert "name: Terminal shell in container" in captured.out
    assert "score: 40" in captured.out
    assert "no ATT&CK technique tag; skipped" in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        [
            "import-falco-rules",
            "--priority-scores",
            "loud=3",
            str(TESTDATA / "falco_rules_old.yaml"),
        ],
        ["import-escu", str(TESTDATA / "alerts.jsonl")],
        ["tag", "/no/such/file"],
        ["explain", "--catalog", "/no/such/catalog.yaml"],
    ],
)
def test_errors_are_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad input files and options give exit code 2 and one line on stderr."""
    code = main(argv)

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert err[0].startswith("falco-risk: ")


def test_tag_runs_as_a_separate_process_on_stdin() -> None:
    """`python -m falco_risk tag -` reads stdin and writes OTLP JSON lines."""
    completed = subprocess.run(
        [sys.executable, "-m", "falco_risk", "tag", "-"],
        input=Path(ALERTS).read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert len(completed.stdout.splitlines()) == 4
    assert '"risk_score"' in completed.stdout.splitlines()[0]
