"""Render a real splunk-otel-collector chart with an overlay and take out its collector config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import yaml
from packaging.version import Version

from . import collector_graph as graph

# Enough for the chart to render with Splunk Platform logs and nothing else.
BASE_VALUES: dict[str, Any] = {
    "clusterName": "test-cluster",
    "splunkPlatform": {
        "endpoint": "https://hec.example.com:8088/services/collector",
        "token": "00000000-0000-0000-0000-000000000000",
        "index": "main",
    },
}
FIRST_CURRENT = Version("0.149.0")


def render_collector_config(
    chart_dir: Path, mode: str, overlay_dir: Path, model: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Return the chart's naming era and the collector config it renders with the overlay."""
    with helm_python.Chart.load(chart_dir) as chart:
        era = "current" if Version(chart.version) >= FIRST_CURRENT else "legacy"
        overlay = yaml.safe_load((overlay_dir / model[era]["overlays"][mode]).read_text())
        values = graph.merge(BASE_VALUES, overlay)
        if mode == "gateway":
            values = graph.merge(values, {"gateway": {"enabled": True}})
        manifests = chart.render(values, name="sck", namespace="otel")

    suffix = "configmap-agent.yaml" if mode == "agent" else "configmap-gateway.yaml"
    (text,) = [t for path, t in manifests.items() if path.endswith(suffix)]
    config: dict[str, Any] = yaml.safe_load(yaml.safe_load(text)["data"]["relay"])
    return era, config
