"""The falco-risk Helm chart, linted and rendered by Helm's own engine."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from .helm import ci_scenarios, lint, load_values, render
from .paths import CHART_DIR

# The chart's declared minimum and the newest schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.26", kubernetes_validate.utils.latest_version())

SCENARIOS = [pytest.param({}, id="defaults")] + [
    pytest.param(load_values(p), id=p.name.removesuffix("-values.yaml")) for p in ci_scenarios()
]

WARNING = 2


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def _schema_leaves(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Return the dotted paths the schema spells out; free-form objects count as leaves."""
    leaves: list[str] = []
    for key, node in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if "properties" in node:
            leaves.extend(_schema_leaves(node, f"{path}."))
        else:
            leaves.append(path)
    return leaves


def test_chart_has_ci_scenarios_for_both_modes() -> None:
    """The ci/ folder holds scenarios for daemonset and for deployment mode."""
    modes = {load_values(p).get("mode") for p in ci_scenarios()}

    assert modes == {"daemonset", "deployment"}


@pytest.mark.parametrize("values", SCENARIOS)
def test_chart_lint_strict_passes(values: dict[str, Any]) -> None:
    """helm lint --strict finds no warning or error with each scenario."""
    report = lint(values)

    problems = [m for m in report["messages"] if m["severity"] >= WARNING]
    assert report["errors"] == []
    assert problems == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", SCENARIOS)
def test_chart_manifests_are_valid_kubernetes_objects(values: dict[str, Any], version: str) -> None:
    """Every rendered object validates strictly against the Kubernetes schemas."""
    rendered = render(values)

    for obj in rendered.objects:
        kubernetes_validate.validate(obj, version, strict=True)

    assert rendered.objects


@pytest.mark.parametrize("values", SCENARIOS)
def test_chart_pod_is_locked_down(values: dict[str, Any]) -> None:
    """The pod runs non-root, read-only, without capabilities, under RuntimeDefault seccomp."""
    rendered = render(values)

    pod = rendered.pod_spec()["securityContext"]
    container = rendered.container()["securityContext"]

    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["runAsNonRoot"] is True
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["privileged"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}
    assert rendered.pod_spec()["automountServiceAccountToken"] is False


@pytest.mark.parametrize("values", SCENARIOS)
def test_chart_probes_hit_the_health_endpoints_on_the_http_port(values: dict[str, Any]) -> None:
    """Startup and liveness probe /healthz, readiness probes /readyz, all on the HTTP port."""
    container = render(values).container()
    http_port = next(p for p in container["ports"] if p["name"] == "otlp-http")

    paths = {
        probe: container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    ports = {container[probe]["httpGet"]["port"] for probe in paths}

    assert paths == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    assert ports == {http_port["name"]}


@pytest.mark.parametrize("values", SCENARIOS)
def test_chart_config_file_is_mounted_where_serve_reads_it(values: dict[str, Any]) -> None:
    """The container runs with --config pointing at the mounted ConfigMap key."""
    rendered = render(values)
    container = rendered.container()
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in rendered.pod_spec()["volumes"]}

    config_path = container["args"][container["args"].index("--config") + 1]
    mount = mounts[config_path]
    configmap_name = volumes[mount["name"]]["configMap"]["name"]

    assert mount["subPath"] == "config.yaml"
    assert mount["readOnly"] is True
    assert "config.yaml" in rendered.named("ConfigMap", configmap_name)["data"]
    assert "command" not in container


@pytest.mark.parametrize("values", SCENARIOS)
def test_chart_listens_on_all_interfaces_with_tls_or_the_insecure_flag(
    values: dict[str, Any],
) -> None:
    """falco-risk listens on 0.0.0.0 and opts into plaintext exactly when TLS is off."""
    rendered = render(values)
    config = rendered.config_file()
    tls = values.get("tls", {}).get("enabled", False)

    ports = {p["name"]: p["containerPort"] for p in rendered.container()["ports"]}

    assert config["grpc_endpoint"] == f"0.0.0.0:{ports['otlp-grpc']}"
    assert config["http_endpoint"] == f"0.0.0.0:{ports['otlp-http']}"
    assert config.get("allow_insecure_listen", False) is (not tls)
    assert ("tls_cert_file" in config) is tls


@pytest.mark.parametrize("values", SCENARIOS)
def test_chart_service_ports_reach_the_container_ports(values: dict[str, Any]) -> None:
    """Each Service port targets a named container port with the same number."""
    rendered = render(values)
    container_ports = {p["name"]: p["containerPort"] for p in rendered.container()["ports"]}

    services = rendered.all("Service")

    assert services
    for service in services:
        for port in service["spec"]["ports"]:
            assert container_ports[port["targetPort"]] == port["port"]


def test_chart_defaults_are_daemonset_on_the_otlp_ports() -> None:
    """By default one pod per node listens on 4317 and 4318."""
    rendered = render()

    ports = {p["name"]: p["containerPort"] for p in rendered.container()["ports"]}

    assert rendered.workload()["kind"] == "DaemonSet"
    assert ports == {"otlp-grpc": 4317, "otlp-http": 4318}


def test_chart_daemonset_keeps_traffic_on_the_node() -> None:
    """In daemonset mode the Service is node-local and falco-risk forwards to its node's IP."""
    rendered = render({"mode": "daemonset"})
    container = rendered.container()

    env = _env(container)
    node_ip = next(e for e in container["env"] if e["name"] == "NODE_IP")

    assert rendered.one("Service")["spec"]["internalTrafficPolicy"] == "Local"
    assert node_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert env["FALCO_RISK_FORWARD_ENDPOINT"] == "$(NODE_IP):4319"
    assert "forward_endpoint" not in rendered.config_file()
    assert not rendered.all("HorizontalPodAutoscaler")
    assert not rendered.all("PodDisruptionBudget")


def test_chart_daemonset_with_endpoint_forwards_there() -> None:
    """A forward endpoint set in daemonset mode goes into the file and no node IP is used."""
    rendered = render({"forward": {"endpoint": "agent.otel.svc:4319"}})

    env = _env(rendered.container())

    assert rendered.config_file()["forward_endpoint"] == "agent.otel.svc:4319"
    assert "FALCO_RISK_FORWARD_ENDPOINT" not in env
    assert "NODE_IP" not in env


def test_chart_daemonset_host_port_publishes_grpc_only() -> None:
    """hostPort.enabled publishes the gRPC port on the node at the chosen port."""
    rendered = render({"hostPort": {"enabled": True, "port": 14317}})

    host_ports = {p["name"]: p.get("hostPort") for p in rendered.container()["ports"]}

    assert host_ports == {"otlp-grpc": 14317, "otlp-http": None}


def test_chart_deployment_has_autoscaler_budget_and_headless_service() -> None:
    """Deployment mode renders a Deployment, a HorizontalPodAutoscaler, a PDB and two Services."""
    rendered = render(
        {
            "mode": "deployment",
            "forward": {"endpoint": "gw.otel.svc:4319"},
            "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 9},
        }
    )

    deployment = rendered.one("Deployment")
    hpa = rendered.one("HorizontalPodAutoscaler")
    headless = rendered.named("Service", "falco-risk-headless")
    service = rendered.named("Service", "falco-risk")

    assert "replicas" not in deployment["spec"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    assert rendered.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert headless["spec"]["clusterIP"] == "None"
    assert "internalTrafficPolicy" not in service["spec"]
    assert rendered.config_file()["forward_endpoint"] == "gw.otel.svc:4319"


def test_chart_deployment_min_available_replaces_max_unavailable() -> None:
    """Setting minAvailable puts it alone in the PodDisruptionBudget."""
    rendered = render(
        {
            "mode": "deployment",
            "forward": {"endpoint": "gw:4319"},
            "podDisruptionBudget": {"minAvailable": "50%"},
        }
    )

    spec = rendered.one("PodDisruptionBudget")["spec"]

    assert spec["minAvailable"] == "50%"
    assert "maxUnavailable" not in spec


def test_chart_inline_catalog_is_mounted_where_the_config_points() -> None:
    """Inline catalog files land in a ConfigMap mounted at the directory the config lists."""
    rendered = render({"catalog": {"inline": {"mine.yaml": "detections: []\n"}}})
    container = rendered.container()
    volumes = {v["name"]: v for v in rendered.pod_spec()["volumes"]}

    (catalog_dir,) = rendered.config_file()["catalog"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == catalog_dir)
    configmap = rendered.named("ConfigMap", volumes[mount["name"]]["configMap"]["name"])

    assert yaml.safe_load(configmap["data"]["mine.yaml"]) == {"detections": []}
    assert "checksum/catalog" in rendered.workload()["spec"]["template"]["metadata"]["annotations"]


def test_chart_without_catalog_uses_the_seed_detection() -> None:
    """With no catalog source the config lists no catalog and nothing is mounted for it."""
    rendered = render()

    volume_names = {v["name"] for v in rendered.pod_spec()["volumes"]}

    assert "catalog" not in rendered.config_file()
    assert "catalog" not in volume_names


def test_chart_tls_mounts_the_secret_and_probes_use_https() -> None:
    """TLS mounts the Secret where the config points and switches the probes to HTTPS."""
    rendered = render({"tls": {"enabled": True, "secretName": "frs", "requireClientCert": True}})
    container = rendered.container()
    volumes = {v["name"]: v for v in rendered.pod_spec()["volumes"]}
    config = rendered.config_file()

    tls_dir = str(Path(config["tls_cert_file"]).parent)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == tls_dir)

    assert volumes[mount["name"]]["secret"]["secretName"] == "frs"
    assert Path(config["tls_key_file"]).parent == Path(tls_dir)
    assert config["tls_client_ca_file"] == f"{tls_dir}/ca.crt"
    assert {container[p]["httpGet"]["scheme"] for p in ("livenessProbe", "readinessProbe")} == {
        "HTTPS"
    }


def test_chart_config_change_rolls_the_pods() -> None:
    """A configuration change changes the pod template's checksum annotation."""
    before = render().workload()["spec"]["template"]["metadata"]["annotations"]

    after = render({"config": {"logLevel": "debug"}}).workload()["spec"]["template"]["metadata"][
        "annotations"
    ]

    assert before["checksum/config"] != after["checksum/config"]


@pytest.mark.parametrize("values", SCENARIOS)
def test_chart_config_file_is_accepted_by_falco_risk(
    values: dict[str, Any], tmp_path: Path
) -> None:
    """falco-risk's own loader accepts the rendered file plus the pod's FALCO_RISK_* variables."""
    config_module = pytest.importorskip("falco_risk.config")
    rendered = render(values)
    file_config = rendered.config_file()
    unknown = sorted(set(file_config) - set(config_module.KEYS))
    if unknown:
        pytest.skip(f"this falco-risk does not know {unknown} yet")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(file_config), encoding="utf-8")
    environ = {
        name: value.replace("$(NODE_IP)", "10.0.0.7")
        for name, value in _env(rendered.container()).items()
        if name.startswith("FALCO_RISK_")
    }

    loaded = config_module.load_config(path=str(path), environ=environ)

    assert loaded.grpc_endpoint == file_config["grpc_endpoint"]
    assert loaded.http_endpoint == file_config["http_endpoint"]
    assert loaded.forward_endpoint == environ.get(
        "FALCO_RISK_FORWARD_ENDPOINT", file_config.get("forward_endpoint")
    )
    assert loaded.forward_endpoint


def test_chart_schema_rejects_unknown_keys() -> None:
    """Unknown keys, at the top or nested, stop the render with the key named."""
    with pytest.raises(helm_python.HelmValuesError, match="imagee"):
        render({"imagee": {}})

    with pytest.raises(helm_python.HelmValuesError, match="tagg"):
        render({"image": {"tagg": "1"}})


def test_chart_schema_rejects_a_bad_mode() -> None:
    """The mode is one of daemonset and deployment."""
    with pytest.raises(helm_python.HelmValuesError, match="mode"):
        render({"mode": "statefulset"})


FORWARD = {"forward": {"endpoint": "gw:4319"}}
INVALID_COMBINATIONS = [
    pytest.param({"mode": "deployment"}, "forward.endpoint is required", id="no-forward"),
    pytest.param(
        {"catalog": {"inline": {"a.yaml": "x"}, "configMap": "c"}},
        "exclusive",
        id="two-catalogs",
    ),
    pytest.param({"tls": {"enabled": True}}, "tls.secretName", id="tls-without-secret"),
    pytest.param({"tls": {"requireClientCert": True}}, "needs tls.enabled", id="mtls-without-tls"),
    pytest.param({"autoscaling": {"enabled": True}}, "deployment mode only", id="hpa-daemonset"),
    pytest.param(
        {
            "mode": "deployment",
            **FORWARD,
            "autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2},
        },
        "exceeds",
        id="hpa-min-over-max",
    ),
    pytest.param(
        {
            "mode": "deployment",
            **FORWARD,
            "autoscaling": {"enabled": True},
            "resources": {"requests": None},
        },
        "resources.requests.cpu",
        id="hpa-without-cpu-request",
    ),
    pytest.param(
        {
            "mode": "deployment",
            **FORWARD,
            "autoscaling": {
                "enabled": True,
                "targetCPUUtilizationPercentage": 0,
                "targetMemoryUtilizationPercentage": 0,
            },
        },
        "needs targetCPUUtilizationPercentage",
        id="hpa-without-target",
    ),
    pytest.param(
        {"mode": "deployment", **FORWARD, "hostPort": {"enabled": True}},
        "daemonset mode only",
        id="hostport-deployment",
    ),
    pytest.param(
        {"hostPort": {"enabled": True, "port": 4317}}, "held by the collector", id="hostport-4317"
    ),
    pytest.param({"ports": {"grpc": 4317, "http": 4317}}, "must differ", id="same-ports"),
    pytest.param(
        {"config": {"extra": {"forward_endpoint": "x:1"}}}, "set by the chart", id="extra-owned"
    ),
    pytest.param(
        {"terminationGracePeriodSeconds": 20}, "killed mid-drain", id="grace-shorter-than-drain"
    ),
]


@pytest.mark.parametrize(("values", "message"), INVALID_COMBINATIONS)
def test_chart_fails_on_invalid_combination(values: dict[str, Any], message: str) -> None:
    """Each invalid combination stops the render with a message naming the values."""
    with pytest.raises(helm_python.HelmRenderError, match=re.escape(message)):
        render(values)


def test_chart_readme_documents_every_value() -> None:
    """The README's values table has one row per value the schema defines, and no other."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")

    rows = re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE)

    assert sorted(rows) == sorted(set(_schema_leaves(schema)) - {"global"})


def test_chart_values_file_sets_every_schema_value() -> None:
    """values.yaml carries a commented default for every value the schema defines."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))

    missing = []
    for path in set(_schema_leaves(schema)) - {"global"}:
        node = values
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(path)
                break
            node = node[part]

    assert missing == []
