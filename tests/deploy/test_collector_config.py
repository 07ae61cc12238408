"""The collector configurations of collector-config/, checked as pipeline graphs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import collector_graph as graph
from .helm import load_values, render
from .paths import COLLECTOR_CONFIG_DIR, TESTDATA

OVERLAY_DIR = COLLECTOR_CONFIG_DIR / "splunk-otel-collector"
STANDALONE = COLLECTOR_CONFIG_DIR / "standalone.yaml"
LOCAL = COLLECTOR_CONFIG_DIR / "local" / "filelog-to-falco-risk.yaml"
CHART_MODEL = yaml.safe_load(
    (TESTDATA / "splunk-otel-collector-chart.yaml").read_text(encoding="utf-8")
)

ROUTER = "routing/falco_risk"
RETURN_RECEIVER = "otlp/falco_risk_return"
HEC = "splunk_hec/platform_logs"
FALCO_CONDITION = 'attributes["com.splunk.sourcetype"] == "kube:container:falco"'
EXPORTER_OF_ERA = {"legacy": "otlp/falco_risk", "current": "otlp_grpc/falco_risk"}
FALCO_RISK_MODE = {"agent": "daemonset", "gateway": "deployment"}

CASES = [
    pytest.param(era, mode, id=f"{era}-{mode}")
    for era in ("legacy", "current")
    for mode in ("agent", "gateway")
]


def _overlay(era: str, mode: str) -> dict[str, Any]:
    path = OVERLAY_DIR / CHART_MODEL[era]["overlays"][mode]
    parsed: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return parsed


def _merged(era: str, mode: str) -> dict[str, Any]:
    """The collector configuration the chart would render with the overlay applied."""
    default = CHART_MODEL[era][mode]["config"]
    merged: dict[str, Any] = graph.merge(default, _overlay(era, mode)[mode]["config"])
    return merged


def _endpoint_port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _endpoint_host(endpoint: str) -> str:
    return endpoint.removeprefix("dns:///").rsplit(":", 1)[0]


def _falco_risk_exporter(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (name,) = [e for e in config["exporters"] if e.endswith("/falco_risk")]
    settings: dict[str, Any] = config["exporters"][name]
    return name, settings


def _assert_routes_only_falco_logs(config: dict[str, Any]) -> None:
    exporter, _ = _falco_risk_exporter(config)
    routing = config["connectors"][ROUTER]

    (route,) = routing["table"]
    assert (route["context"], route["condition"]) == ("resource", FALCO_CONDITION)
    assert route["pipelines"] == ["logs/falco_risk"]
    assert graph.exporters_reached(config, ["logs/falco_risk"]) == {exporter}
    assert graph.exporters_reached(config, routing["default_pipelines"]) == {HEC}
    assert graph.exporters_reached(config, ["logs"]) == {exporter, HEC}


def _assert_return_path_ends_in_splunk(config: dict[str, Any]) -> None:
    returned = graph.fed_by_receiver(config, RETURN_RECEIVER)
    specs = graph.pipelines(config)

    reached = graph.downstream(config, returned)

    assert returned == {"logs/falco_risk_return"}
    assert all(ROUTER not in specs[p]["exporters"] for p in reached)
    assert graph.exporters_reached(config, returned) == {HEC}
    assert not graph.has_cycle(config)


def _assert_exporter_keeps_data(config: dict[str, Any]) -> None:
    name, settings = _falco_risk_exporter(config)
    enabled = config["service"]["extensions"]

    assert settings["retry_on_failure"]["enabled"] is True
    assert settings["retry_on_failure"]["max_elapsed_time"] == 0
    assert settings["sending_queue"]["enabled"] is True
    assert graph.kind(settings["sending_queue"]["storage"]) == "file_storage"
    assert settings["sending_queue"]["storage"] in enabled
    assert settings["compression"] == "gzip"
    for spec in graph.pipelines(config).values():
        if name in spec["exporters"]:
            assert spec["processors"] == []


@pytest.mark.parametrize(("era", "mode"), CASES)
def test_overlay_pipelines_reference_only_defined_components(era: str, mode: str) -> None:
    """Merged into the chart's defaults, every pipeline names components that exist."""
    config = _merged(era, mode)

    problems = graph.undefined_references(config)

    assert problems == []


@pytest.mark.parametrize(("era", "mode"), CASES)
def test_overlay_return_path_cannot_reach_the_router(era: str, mode: str) -> None:
    """Logs coming back from falco-risk go to Splunk HEC and never to the routing connector."""
    config = _merged(era, mode)

    _assert_return_path_ends_in_splunk(config)


@pytest.mark.parametrize(("era", "mode"), CASES)
def test_overlay_routes_only_falco_logs_to_falco_risk(era: str, mode: str) -> None:
    """Only the Falco sourcetype goes to falco-risk; everything else goes on to Splunk HEC."""
    config = _merged(era, mode)

    _assert_routes_only_falco_logs(config)


@pytest.mark.parametrize(("era", "mode"), CASES)
def test_overlay_keeps_the_default_logs_pipeline_but_its_exporters(era: str, mode: str) -> None:
    """The chart's logs pipeline keeps its receivers and processors; only its exporters change."""
    default = graph.pipelines(CHART_MODEL[era][mode]["config"])["logs"]

    merged = graph.pipelines(_merged(era, mode))["logs"]

    assert merged["receivers"] == default["receivers"]
    assert merged["processors"] == default["processors"]
    assert merged["exporters"] == [ROUTER]


@pytest.mark.parametrize(("era", "mode"), CASES)
def test_overlay_exporter_keeps_data_while_falco_risk_is_down(era: str, mode: str) -> None:
    """Retries never give up, the queue is on disk, data is gzipped and nothing batches in front."""
    config = _merged(era, mode)

    _assert_exporter_keeps_data(config)
    assert _falco_risk_exporter(config)[0] == EXPORTER_OF_ERA[era]


@pytest.mark.parametrize(("era", "mode"), CASES)
def test_overlay_only_sets_keys_the_chart_accepts(era: str, mode: str) -> None:
    """The overlay touches only the chart's ports, volumes and config, in the shape it accepts."""
    overlay = _overlay(era, mode)
    allowed = {"agent": {"ports", "config"}}
    allowed["gateway"] = {"ports", "config", "extraVolumes", "extraVolumeMounts"}

    (port,) = overlay[mode]["ports"].values()

    assert set(overlay) == {mode}
    assert set(overlay[mode]) <= allowed[mode]
    assert set(port) <= {"containerPort", "hostPort", "protocol", "enabled_for"}
    assert port["enabled_for"] == ["logs"]


@pytest.mark.parametrize(("era", "mode"), CASES)
def test_overlay_ports_agree_with_the_falco_risk_chart(era: str, mode: str) -> None:
    """The exporter targets the falco-risk Service and port; falco-risk returns to the new port."""
    overlay = _overlay(era, mode)[mode]
    config = _merged(era, mode)
    _, exporter = _falco_risk_exporter(config)
    gateway_return = "sck-splunk-otel-collector.otel.svc.cluster.local:4319"
    values = {"mode": FALCO_RISK_MODE[mode], "forward": {"endpoint": gateway_return}}
    rendered = render(values if mode == "gateway" else {})
    chart_defaults = load_values(Path(__file__).parents[2] / "charts/falco-risk/values.yaml")

    service_name = _endpoint_host(exporter["endpoint"]).split(".")[0]
    service = rendered.named("Service", service_name)
    service_ports = {p["port"] for p in service["spec"]["ports"]}
    return_port = _endpoint_port(
        config["receivers"][RETURN_RECEIVER]["protocols"]["grpc"]["endpoint"]
    )
    (declared,) = overlay["ports"].values()

    assert _endpoint_port(exporter["endpoint"]) == chart_defaults["ports"]["grpc"]
    assert chart_defaults["ports"]["grpc"] in service_ports
    assert return_port == chart_defaults["forward"]["returnPort"] == declared["containerPort"]
    assert return_port not in CHART_MODEL[era][mode]["ports"].values()
    assert return_port not in chart_defaults["ports"].values()
    if mode == "agent":
        assert service["spec"]["internalTrafficPolicy"] == "Local"
        assert declared["hostPort"] == return_port
    else:
        assert service["spec"]["clusterIP"] == "None"
        assert exporter["balancer_name"] == "round_robin"
        assert _endpoint_port(rendered.config_file()["forward_endpoint"]) == return_port


@pytest.mark.parametrize("mode", ["agent", "gateway"])
def test_current_overlays_avoid_names_the_chart_refuses(mode: str) -> None:
    """From chart 0.149.0 on, the overlay uses none of the component names the chart refuses."""
    config = _overlay("current", mode)[mode]["config"]
    refused = CHART_MODEL["current"]["refused_names"]

    used = {
        section: {graph.kind(c) for c in config.get(section, {})}
        | {graph.kind(c) for s in graph.pipelines(config).values() for c in s[section]}
        for section in refused
    }

    for section, names in refused.items():
        assert used[section].isdisjoint(names), section


@pytest.mark.parametrize("mode", ["agent", "gateway"])
def test_legacy_and_current_overlays_differ_only_in_the_exporter_name(mode: str) -> None:
    """The two overlays of a mode are the same but for otlp versus otlp_grpc."""
    legacy = _overlay("legacy", mode)
    current_text = (OVERLAY_DIR / CHART_MODEL["current"]["overlays"][mode]).read_text(
        encoding="utf-8"
    )

    current = yaml.safe_load(current_text.replace("otlp_grpc/falco_risk", "otlp/falco_risk"))

    assert current == legacy
    assert "otlp_grpc/falco_risk" in current_text


def test_standalone_pipelines_reference_only_defined_components() -> None:
    """The standalone configuration names only components it defines."""
    config = yaml.safe_load(STANDALONE.read_text(encoding="utf-8"))

    problems = graph.undefined_references(config)

    assert problems == []


def test_standalone_routes_falco_logs_and_returns_them_to_splunk_only() -> None:
    """The standalone configuration routes and returns as the chart overlays do."""
    config = yaml.safe_load(STANDALONE.read_text(encoding="utf-8"))

    _assert_routes_only_falco_logs(config)
    _assert_return_path_ends_in_splunk(config)
    _assert_exporter_keeps_data(config)


def test_standalone_ports_agree_with_the_falco_risk_chart() -> None:
    """The standalone configuration uses falco-risk's gRPC port and the shared return port."""
    config = yaml.safe_load(STANDALONE.read_text(encoding="utf-8"))
    chart_defaults = load_values(Path(__file__).parents[2] / "charts/falco-risk/values.yaml")
    _, exporter = _falco_risk_exporter(config)

    default_endpoint = exporter["endpoint"].split(":-", 1)[1].rstrip("}")
    receiver = config["receivers"][RETURN_RECEIVER]["protocols"]["grpc"]["endpoint"]

    assert _endpoint_port(default_endpoint) == chart_defaults["ports"]["grpc"]
    assert _endpoint_port(receiver) == chart_defaults["forward"]["returnPort"]


def test_standalone_reads_container_logs_as_the_local_config_does() -> None:
    """The standalone and local configurations parse container logs with the same operators."""
    standalone = yaml.safe_load(STANDALONE.read_text(encoding="utf-8"))
    local = yaml.safe_load(LOCAL.read_text(encoding="utf-8"))

    assert (
        standalone["receivers"]["file_log"]["operators"]
        == (local["receivers"]["filelog"]["operators"])
    )


RENAMED = {"filelog": "file_log", "resourcedetection": "resource_detection"}


def _real_chart_dirs() -> list[Path]:
    raw = os.environ.get("FALCO_RISK_SPLUNK_CHART_DIRS", "")
    return [Path(p) for p in raw.split(os.pathsep) if p]


@pytest.mark.skipif(
    not _real_chart_dirs(),
    reason="set FALCO_RISK_SPLUNK_CHART_DIRS to unpacked splunk-otel-collector chart folders",
)
@pytest.mark.parametrize("mode", ["agent", "gateway"])
def test_overlay_renders_with_a_real_splunk_chart(mode: str) -> None:
    """With a real chart, the overlay renders and the model's logs pipeline matches the chart's."""
    from .splunk_chart import render_collector_config

    for chart_dir in _real_chart_dirs():
        era, config = render_collector_config(chart_dir, mode, OVERLAY_DIR, CHART_MODEL)
        default = graph.pipelines(CHART_MODEL[era][mode]["config"])["logs"]

        logs = graph.pipelines(config)["logs"]

        # The chart renamed its own components over several releases (filelog in 0.151.0,
        # resourcedetection in 0.158.0); the overlays name none of them.
        receivers = [RENAMED.get(r, r) if era == "current" else r for r in logs["receivers"]]
        processors = [RENAMED.get(p, p) if era == "current" else p for p in logs["processors"]]

        assert graph.undefined_references(config) == [], chart_dir
        assert receivers == default["receivers"], chart_dir
        assert processors == default["processors"], chart_dir
        _assert_routes_only_falco_logs(config)
        _assert_return_path_ends_in_splunk(config)
        _assert_exporter_keeps_data(config)
