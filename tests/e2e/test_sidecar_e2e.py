"""falco-risk between real OTLP peers: the reference exporter, rotel-agent and otelcol-contrib."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from support.alerts import (
    alerts_request,
    falco_resource,
    k8s_api_alert,
    new_uid,
    sensitive_file_alert,
    shell_alert,
    with_uid,
)
from support.capture import CaptureServer, Reply
from support.otelcol import OtelCol, filelog_to_otlphttp, pod_log_path, write_config
from support.otlp import attributes
from support.process import Processes
from support.rotel import Retry, Rotel
from support.send import export_grpc, export_with_sdk, sdk_records
from support.sidecar import Sidecar

WAIT_S = 20.0
SEED_RULE = "Kubernetes Falco Shell Spawned"


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_reference_exporter_through_falco_risk_to_capture(
    peers: Processes, capture: CaptureServer, protocol: str
) -> None:
    """The Python OTLP exporter's records arrive at the next hop, shell alerts tagged."""
    sidecar = peers.start(Sidecar(capture.endpoint))
    shell, other = shell_alert(), sensitive_file_alert()
    target = sidecar.grpc_endpoint if protocol == "grpc" else sidecar.logs_url

    assert export_with_sdk(target, sdk_records([shell.json(), other.json()]), protocol=protocol)

    arrived = capture.wait_for_records(2, WAIT_S)
    (tagged,) = with_uid(arrived, shell.uid)
    (untouched,) = with_uid(arrived, other.uid)
    assert tagged.attributes["risk_score"] == "49"
    assert tagged.attributes["container_name"] == f"app-{shell.uid}"
    assert tagged.attributes["security_rule.name"] == SEED_RULE
    assert "risk_score" not in untouched.attributes
    assert untouched.body == other.json()
    assert tagged.resource["com.splunk.sourcetype"] == "kube:container:falco"


def test_rotel_upstream_and_downstream_keep_everything_but_the_tags_unchanged(
    peers: Processes, capture: CaptureServer
) -> None:
    """exporter, rotel, falco-risk, rotel, capture: text and JSON alerts, resource intact."""
    downstream = peers.start(Rotel(capture.endpoint))
    sidecar = peers.start(Sidecar(downstream.grpc_endpoint))
    upstream = peers.start(Rotel(sidecar.grpc_endpoint))
    alerts = [shell_alert(), shell_alert(shell="sh"), k8s_api_alert(), sensitive_file_alert()]
    sent = alerts_request(alerts[:2], text=True)
    sent.resource_logs.extend(alerts_request(alerts[2:]).resource_logs)

    export_grpc(upstream.grpc_endpoint, sent)

    arrived = capture.wait_for_records(4, WAIT_S)
    by_uid = {a.uid: with_uid(arrived, a.uid)[0] for a in alerts}
    for alert in alerts[:2]:
        record = by_uid[alert.uid]
        assert record.attributes["risk_message"] == (
            f"A shell is spawned in the container app-{alert.uid} by user root."
        )
        assert record.attributes["annotations.mitre_attack"] == ["T1204"]
        assert record.body == alert.text()
    sent_attributes = attributes(sent.resource_logs[1].scope_logs[0].log_records[0].attributes)
    for alert in alerts[2:]:
        assert by_uid[alert.uid].attributes == sent_attributes
        assert by_uid[alert.uid].body == alert.json()
    assert all(r.resource == falco_resource() for r in arrived)


def test_downstream_down_means_unavailable_and_nothing_lost_once_back(
    peers: Processes, capture: CaptureServer
) -> None:
    """While the next hop is down the upstream gets UNAVAILABLE; its retries deliver everything."""
    sidecar = peers.start(Sidecar(capture.endpoint))
    capture.stop()
    alerts = [shell_alert() for _ in range(5)]

    with pytest.raises(grpc.RpcError) as caught:
        export_grpc(sidecar.grpc_endpoint, alerts_request(alerts))
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE

    upstream = peers.start(Rotel(sidecar.grpc_endpoint, retry=Retry(max_elapsed_time="60s")))
    export_grpc(upstream.grpc_endpoint, alerts_request(alerts))
    time.sleep(1.0)
    assert capture.record_count() == 0
    capture.restart()

    arrived = capture.wait_for_records(5, WAIT_S)
    assert sorted(r.attributes["container_id"] for r in arrived) == sorted(a.uid for a in alerts)
    assert all(r.attributes["risk_score"] == "49" for r in arrived)


def test_permanent_downstream_refusal_is_passed_through(
    peers: Processes, capture: CaptureServer
) -> None:
    """The next hop's INVALID_ARGUMENT reaches the upstream with its code."""
    sidecar = peers.start(Sidecar(capture.endpoint))
    capture.set_reply(Reply(code=grpc.StatusCode.INVALID_ARGUMENT, message="no"))

    with pytest.raises(grpc.RpcError) as caught:
        export_grpc(sidecar.grpc_endpoint, alerts_request([shell_alert()]))

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_otelcol_filelog_tails_falco_container_log_into_falco_risk(
    peers: Processes, capture: CaptureServer, tmp_path: Path
) -> None:
    """otelcol-contrib tails Falco's CRI log like the Splunk chart; tagged records reach rotel."""
    downstream = peers.start(Rotel(capture.endpoint))
    sidecar = peers.start(Sidecar(downstream.grpc_endpoint))
    pod_uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    log = pod_log_path(tmp_path, f"falco-{new_uid()[:5]}", pod_uid)
    log.parent.mkdir(parents=True)
    shell, other = shell_alert(), sensitive_file_alert()
    log.write_text(
        shell.cri_line() + "\n" + other.cri_line() + "\n" + shell_alert().cri_line(text=True) + "\n"
    )
    config = write_config(filelog_to_otlphttp(tmp_path, sidecar.logs_url), tmp_path)

    peers.start(OtelCol(config))

    arrived = capture.wait_for_records(3, WAIT_S * 2)
    (tagged,) = with_uid(arrived, shell.uid)
    (untouched,) = with_uid(arrived, other.uid)
    assert tagged.resource["com.splunk.sourcetype"] == "kube:container:falco"
    assert tagged.resource["k8s.pod.uid"] == pod_uid
    assert tagged.attributes["risk_score"] == "49"
    assert tagged.attributes["container_image"] == "docker.io/library/nginx"
    assert "risk_score" not in untouched.attributes
    assert sum(1 for r in arrived if r.attributes.get("risk_score") == "49") == 2
