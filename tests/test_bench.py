"""The benchmark harness runs end to end on a tiny load (its figures are not checked)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PIPELINES = ("floor", "rotel+python", "falco-risk")


@pytest.mark.timeout(240)
def test_bench_runs_every_phase_and_reports(tmp_path: Path) -> None:
    """`python -m bench` on a tiny load delivers every record, tags as the reference and reports."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "processor"), env.get("PYTHONPATH", "")])
    argv = [
        sys.executable, "-m", "bench", "--runs", "1", "--pipelines", ",".join(PIPELINES),
        "--mixes", "100pct", "--records", "20", "--duration", "0.4", "--warmup", "0.2",
        "--rate", "2000", "--latency-duration", "0.4", "--no-memory", "--out", str(tmp_path),
    ]  # fmt: skip

    finished = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=220, check=False
    )

    assert finished.returncode == 0, finished.stderr[-3000:]
    (results_file,) = tmp_path.glob("*.json")
    results = json.loads(results_file.read_text())
    assert results["tagging"] == {"rotel+python": "identical", "falco-risk": "identical"}
    measured = {(m["pipeline"], m["records"]) for m in results["measurements"]}
    assert measured == {(name, size) for name in PIPELINES for size in (20, 40)}
    for measurement in results["measurements"]:
        assert measurement["delivered"] == measurement["acknowledged"] > 0
        assert measurement["cpu_us_per_record"] > 0
        expected_tagged = 0 if measurement["pipeline"] == "floor" else measurement["delivered"]
        assert measurement["tagged"] == expected_tagged, measurement
    report = (tmp_path / results_file.name.replace(".json", ".md")).read_text()
    assert all(f"| {name} | 100pct |" in report for name in PIPELINES)
