"""Render the falco-risk chart offline with Helm's own engine and read the result."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import yaml

from .paths import CHART_DIR

RELEASE = "falco-risk"
NAMESPACE = "falco-risk"


@dataclass(frozen=True)
class Rendered:
    """The Kubernetes objects a release would create, by kind and name."""

    objects: list[dict[str, Any]]

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Return every object of a kind."""
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        """Return the single object of a kind, failing when there is not exactly one."""
        (found,) = self.all(kind)
        return found

    def named(self, kind: str, name: str) -> dict[str, Any]:
        """Return the object of a kind with a name."""
        (found,) = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        return found

    def workload(self) -> dict[str, Any]:
        """Return the DaemonSet or the Deployment."""
        (found,) = [o for o in self.objects if o["kind"] in ("DaemonSet", "Deployment")]
        return found

    def pod_spec(self) -> dict[str, Any]:
        """Return the workload's pod spec."""
        spec: dict[str, Any] = self.workload()["spec"]["template"]["spec"]
        return spec

    def container(self) -> dict[str, Any]:
        """Return the falco-risk container."""
        containers: list[dict[str, Any]] = self.pod_spec()["containers"]
        (found,) = [c for c in containers if c["name"] == "falco-risk"]
        return found

    def config_file(self) -> dict[str, Any]:
        """Return falco-risk's configuration file, parsed."""
        configmap = self.named("ConfigMap", self.workload()["metadata"]["name"])
        parsed: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yaml"])
        return parsed


def ci_scenarios() -> list[Path]:
    """Return the chart's ci/*-values.yaml files."""
    return sorted((CHART_DIR / "ci").glob("*-values.yaml"))


def load_values(path: Path) -> dict[str, Any]:
    """Read a values file."""
    values: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return values


def render(values: dict[str, Any] | None = None, release: str = RELEASE) -> Rendered:
    """Render the chart with values over its defaults, as `helm template` would."""
    with helm_python.Chart.load(CHART_DIR) as chart:
        manifests = chart.render(values or {}, name=release, namespace=NAMESPACE)
    return Rendered(list(_objects(manifests)))


def _objects(manifests: dict[str, str]) -> Iterator[dict[str, Any]]:
    for path, text in sorted(manifests.items()):
        if not path.endswith(".yaml"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                yield document


def lint(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run `helm lint --strict` on the chart."""
    return helm_python.lint(CHART_DIR, values, strict=True)
