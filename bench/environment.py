"""What the benchmark ran on: machine, software versions, and how busy the machine was."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from bench.procstat import load_average

_PACKAGES = ("grpcio", "protobuf", "rotel", "orjson", "opentelemetry-proto")


def describe() -> dict[str, object]:
    """Machine, kernel, Python, package versions, git commit and the load right now."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_kib() / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "commit": _commit(),
        **load(),
    }


def load() -> dict[str, object]:
    """Load averages and uptime right now."""
    return {"load_average": load_average(), "uptime": _run(["uptime"])}


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _memory_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _commit() -> str:
    return _run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"])


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""
