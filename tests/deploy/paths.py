"""Where the deployment files and the test tools live."""

from __future__ import annotations

import sysconfig
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTDATA = Path(__file__).resolve().parent / "testdata"
CHART_DIR = REPO_ROOT / "charts" / "falco-risk"
COLLECTOR_CONFIG_DIR = REPO_ROOT / "collector-config"


def venv_tool(name: str) -> Path:
    """Return the path of a console tool installed beside the running interpreter."""
    return Path(sysconfig.get_path("scripts")) / name
