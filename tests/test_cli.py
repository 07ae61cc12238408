"""Tests for the falco-risk command line as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from support.alerts import alerts_request, shell_alert
from support.process import Processes
from support.send import export_grpc
from support.sidecar import Sidecar

WAIT_S = 15.0


def test_serve_alone_prints_tagged_requests_and_exits_0_on_sigterm(peers: Processes) -> None:
    """With no forward endpoint each request appears on stdout as one tagged OTLP JSON line."""
    sidecar = peers.start(Sidecar(None))
    alert = shell_alert()

    export_grpc(sidecar.grpc_endpoint, alerts_request([alert]))
    sidecar.wait_for_output(r"risk_score", WAIT_S)
    code = sidecar.terminate()

    assert code == 0
    (line,) = sidecar.stdout().splitlines()
    record = json.loads(line)["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    values = {a["key"]: a["value"] for a in record["attributes"]}
    assert values["risk_score"] == {"stringValue": "49"}
    assert values["container_id"] == {"stringValue": alert.uid}
    assert "falco-risk stopped" in sidecar.stderr()


def test_unknown_config_key_exits_2_with_one_line(tmp_path: Path) -> None:
    """A misspelt configuration key stops the start with exit code 2 and names the key."""
    config = tmp_path / "falco-risk.yaml"
    config.write_text("forward_endpont: 127.0.0.1:1\n")
    sidecar = Sidecar(None, args=["--config", str(config)])
    try:
        code = sidecar.start_expecting_exit()
        stderr = sidecar.stderr()
    finally:
        sidecar.close()

    assert code == 2
    (line,) = stderr.strip().splitlines()
    assert "unknown key 'forward_endpont'" in line


def test_non_loopback_listener_without_opt_in_exits_2() -> None:
    """Plaintext on all interfaces is refused unless explicitly allowed."""
    sidecar = Sidecar(None, args=["--grpc-endpoint=0.0.0.0:0"])
    try:
        code = sidecar.start_expecting_exit()
        stderr = sidecar.stderr()
    finally:
        sidecar.close()

    assert code == 2
    assert "allow_insecure_listen" in stderr
