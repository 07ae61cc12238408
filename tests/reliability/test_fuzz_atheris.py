"""Runs the atheris harness over the request path in a process of its own, from seed inputs."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from otlp_builders import falco_json
from reliability.records import batch

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        importlib.util.find_spec("atheris") is None, reason="atheris is not installed"
    ),
]
RUNS = 200_000


def write_seeds(directory: Path) -> None:
    """A valid request, OTLP JSON and Falco alerts, each prefixed for every reader."""
    request, _ = batch("seed", 0, 3)
    payloads = [
        request.SerializeToString(),
        b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]}',
        falco_json("10:00:00.0: Notice A shell was spawned in a container").encode(),
        b"10:00:00.000000000: Notice A shell was spawned in a container | user=root",
    ]
    for n, payload in enumerate(payloads):
        for reader in range(3):
            (directory / f"seed-{n}-{reader}").write_bytes(bytes([reader]) + payload)


def test_atheris_campaign_finds_no_crash(tmp_path: Path) -> None:
    """Tens of thousands of coverage-guided inputs raise nothing but the documented errors."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_seeds(corpus)
    processor = Path(__file__).resolve().parents[2] / "processor"

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reliability.fuzz_pipeline",
            f"-runs={RUNS}",
            "-max_total_time=120",
            "-max_len=4096",
            str(corpus),
        ],
        cwd=Path(__file__).resolve().parents[1],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(processor), os.environ.get("PYTHONPATH", "")]),
        },
        capture_output=True,
        text=True,
        timeout=200,
    )

    done = re.search(r"Done (\d+) runs", result.stderr)
    coverage = re.findall(r"cov: (\d+)", result.stderr)
    print(f"\n[reliability] atheris: {done.group(1) if done else '?'} runs, cov {coverage[-1:]}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert done is not None
