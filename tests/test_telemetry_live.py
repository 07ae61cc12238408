"""Self-monitoring of a running falco-risk: /metrics scrapes, OTLP pushes, stats, probes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from prometheus_client.parser import text_string_to_metric_families

import falco_risk
from falco_risk.catalog import load_catalog
from falco_risk.config import Config
from falco_risk.server import Server
from otlp_builders import falco_json, request_with
from support.capture import CaptureServer, Reply
from support.metrics_capture import MetricsCapture
from support.ports import LOOPBACK, free_port, split_endpoint, wait_for_port
from support.process import ChildProcess

SHELL = falco_json(
    "10:00:00.0: Notice A shell was spawned in a container with an attached terminal",
    **{"user.name": "root", "container.name": "web"},
)
SEED_NAME = "Kubernetes Falco Shell Spawned"
STARTUP_TIMEOUT_S = 20.0
WAIT_S = 20.0
PACKAGE_ROOT = str(Path(falco_risk.__file__).resolve().parent.parent)


class FalcoRisk(ChildProcess):
    """``python -m falco_risk serve`` of this tree on free loopback ports."""

    def __init__(self, **settings: str) -> None:
        self.grpc_endpoint = f"{LOOPBACK}:{free_port()}"
        self.http_endpoint = f"{LOOPBACK}:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FALCO_RISK_")}
        env["PYTHONPATH"] = PACKAGE_ROOT
        env.update({f"FALCO_RISK_{key.upper()}": value for key, value in settings.items()})
        argv = [
            sys.executable,
            "-m",
            "falco_risk",
            "serve",
            f"--grpc-endpoint={self.grpc_endpoint}",
            f"--http-endpoint={self.http_endpoint}",
            "--log-format=json",
        ]
        super().__init__(argv, name="falco-risk", env=env)

    def get(self, path: str) -> int | None:
        """Status of GET ``path`` on the HTTP port, None when nothing answers."""
        return http_get(f"http://{self.http_endpoint}{path}")[0]

    def start(self) -> None:
        """Start and wait until /healthz answers 200."""
        super().start()
        self.wait_until(lambda: self.get("/healthz") == 200, STARTUP_TIMEOUT_S, "healthy")

    def export(self, *bodies: str) -> grpc.StatusCode:
        """Send one OTLP/gRPC request with one record per body; return its status."""
        with grpc.insecure_channel(self.grpc_endpoint) as channel:
            try:
                LogsServiceStub(channel).Export(request_with(*bodies), timeout=10)
            except grpc.RpcError as error:
                return error.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    def post(self, *bodies: str) -> int:
        """Send one OTLP/HTTP protobuf request; return its HTTP status."""
        request = urllib.request.Request(
            f"http://{self.http_endpoint}/v1/logs",
            data=request_with(*bodies).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)

    def events(self) -> list[dict[str, object]]:
        """The JSON log lines written so far."""
        return [json.loads(line) for line in self.stderr().splitlines() if line.startswith("{")]


def http_get(url: str) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return None, ""


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A real scrape of a /metrics URL, as sample values keyed by name and labels."""
    status, text = http_get(url)
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """Sum of a sample over the label sets that contain ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


@pytest.fixture
def next_hop() -> Iterator[CaptureServer]:
    with CaptureServer() as capture:
        yield capture


@pytest.fixture
def scraped(next_hop: CaptureServer) -> Iterator[tuple[FalcoRisk, str]]:
    """falco-risk forwarding to a capture server, with /metrics on a free port."""
    metrics_endpoint = f"{LOOPBACK}:{free_port()}"
    with FalcoRisk(
        forward_endpoint=next_hop.endpoint, metrics_prometheus_endpoint=metrics_endpoint
    ) as sidecar:
        yield sidecar, f"http://{metrics_endpoint}/metrics"


def test_metrics_scrape_counts_known_traffic(scraped: tuple[FalcoRisk, str]) -> None:
    """Two requests over two transports show up in /metrics with exact counts."""
    sidecar, url = scraped

    grpc_status = sidecar.export(SHELL, SHELL, "plain one", "plain two", "plain three")
    http_status = sidecar.post("a", "b", "c", "d")
    samples = scrape(url)

    assert (grpc_status, http_status) == (grpc.StatusCode.OK, 200)
    assert total(samples, "falco_risk_records_received_total", transport="grpc") == 5
    assert total(samples, "falco_risk_records_received_total", transport="http") == 4
    assert total(samples, "falco_risk_requests_received_total") == 2
    assert total(samples, "falco_risk_records_tagged_total", security_rule_name=SEED_NAME) == 2
    assert total(samples, "falco_risk_records_forwarded_total") == 9
    assert total(samples, "falco_risk_request_duration_seconds_count") == 2
    assert total(samples, "falco_risk_downstream_duration_seconds_count") == 2
    assert total(samples, "falco_risk_catalog_detections") == 1
    assert total(samples, "target_info", service_name="falco-risk") == 1


def test_metrics_scrape_counts_failures_by_code(
    scraped: tuple[FalcoRisk, str], next_hop: CaptureServer
) -> None:
    """Next-hop refusals are counted by status code and no record counts as forwarded."""
    sidecar, url = scraped
    next_hop.set_reply(Reply(code=grpc.StatusCode.INVALID_ARGUMENT, message="no"))

    status = sidecar.export(SHELL)
    samples = scrape(url)

    assert status is grpc.StatusCode.INVALID_ARGUMENT
    assert (
        total(samples, "falco_risk_downstream_failures_total", error_type="INVALID_ARGUMENT") == 1
    )
    assert total(samples, "falco_risk_records_forwarded_total") == 0


def test_stats_once_prints_the_counts_of_known_traffic(scraped: tuple[FalcoRisk, str]) -> None:
    """``falco-risk stats --once`` shows totals, tagged by detection and in-flight requests."""
    sidecar, url = scraped
    sidecar.export(SHELL, "plain", "plain")
    sidecar.export(SHELL, SHELL)

    result = subprocess.run(
        [sys.executable, "-m", "falco_risk", "stats", "--once", "--url", url, "--interval", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": PACKAGE_ROOT},
        check=False,
    )

    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["records", "received", "5", "0.0"] in lines
    assert ["records", "tagged", "3", "0.0"] in lines
    assert ["records", "forwarded", "5", "0.0"] in lines
    assert [*SEED_NAME.split(), "3", "0.0"] in lines
    assert "requests in flight: 0" in result.stdout


def test_stats_once_fails_clearly_without_an_endpoint() -> None:
    """Nothing listening at the URL is exit code 1 with a message naming it."""
    url = f"http://{LOOPBACK}:{free_port()}/metrics"

    result = subprocess.run(
        [sys.executable, "-m", "falco_risk", "stats", "--once", "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": PACKAGE_ROOT},
        check=False,
    )

    assert result.returncode == 1
    assert f"cannot read {url}" in result.stderr


def test_metrics_are_pushed_over_otlp_grpc() -> None:
    """With metrics_otlp_endpoint set, a real gRPC MetricsService receives our counts."""
    with MetricsCapture() as receiver, CaptureServer() as hop:
        sidecar = FalcoRisk(
            forward_endpoint=hop.endpoint,
            metrics_otlp_endpoint=receiver.endpoint,
            metrics_interval="0.3",
        )
        with sidecar:
            sidecar.export(SHELL, "plain", "plain")
            receiver.wait_for(
                lambda r: (
                    r.values("falco_risk.records.received")
                    == {frozenset({("transport", "grpc")}): 3}
                ),
                WAIT_S,
            )

            tagged = receiver.values("falco_risk.records.tagged")
            metric = receiver.latest("falco_risk.records.received")
            resource = receiver.requests()[-1].resource_metrics[0].resource
            assert sum(tagged.values()) == 1
            assert metric is not None
            assert metric.unit == "{record}"
            assert metric.sum.is_monotonic
            assert {"key": "service.name", "value": "falco-risk"} in [
                {"key": kv.key, "value": kv.value.string_value} for kv in resource.attributes
            ]


def test_last_metrics_are_pushed_at_shutdown() -> None:
    """SIGTERM pushes the final counts, even when the next interval is far away."""
    with MetricsCapture() as receiver, CaptureServer() as hop:
        sidecar = FalcoRisk(
            forward_endpoint=hop.endpoint,
            metrics_otlp_endpoint=receiver.endpoint,
            metrics_interval="3600",
        )
        with sidecar:
            sidecar.export(SHELL, "plain")
            pushed_before_stop = len(receiver.requests())

            code = sidecar.terminate(timeout=WAIT_S)

        assert (code, pushed_before_stop) == (0, 0)
        assert receiver.values("falco_risk.records.forwarded") == {frozenset(): 2}


def test_metrics_are_pushed_over_otlp_http_through_rotel() -> None:
    """OTLP/HTTP metrics are accepted by rotel-agent, which passes them on unchanged."""
    rotel_binary = Path(__import__("rotel").__file__).parent / "rotel-agent"
    with MetricsCapture() as receiver, CaptureServer() as hop:
        rotel_http = f"{LOOPBACK}:{free_port()}"
        rotel = ChildProcess(
            [
                str(rotel_binary),
                "start",
                f"--otlp-grpc-endpoint={LOOPBACK}:{free_port()}",
                f"--otlp-http-endpoint={rotel_http}",
                "--exporter=otlp",
                f"--otlp-exporter-endpoint=http://{receiver.endpoint}",
                "--disable-batching",
            ],
            name="rotel-agent",
        )
        sidecar = FalcoRisk(
            forward_endpoint=hop.endpoint,
            metrics_otlp_endpoint=rotel_http,
            metrics_otlp_protocol="http",
            metrics_interval="0.3",
        )
        with rotel, sidecar:
            wait_for_port(*split_endpoint(rotel_http), timeout=WAIT_S)

            sidecar.export(SHELL, SHELL)
            receiver.wait_for(
                lambda r: sum(r.values("falco_risk.records.tagged").values()) == 2, WAIT_S
            )

            received = receiver.values("falco_risk.records.received")
            assert received == {frozenset({("transport", "grpc")}): 2}


def test_readyz_follows_the_next_hop_down_and_up(next_hop: CaptureServer) -> None:
    """/readyz answers 503 while the next hop is down and 200 again once it is back."""
    with FalcoRisk(forward_endpoint=next_hop.endpoint) as sidecar:
        sidecar.wait_until(lambda: sidecar.get("/readyz") == 200, WAIT_S, "ready")

        next_hop.stop()
        sidecar.wait_until(lambda: sidecar.get("/readyz") == 503, WAIT_S, "unready")
        healthz_while_down = sidecar.get("/healthz")
        next_hop.start()
        sidecar.wait_until(lambda: sidecar.get("/readyz") == 200, WAIT_S, "ready again")
        messages = [str(event["message"]) for event in sidecar.events()]

    assert healthz_while_down == 200
    assert f"falco-risk not ready: next hop {next_hop.endpoint} unreachable" in messages
    assert messages.count("falco-risk ready") == 2


def test_readyz_ignores_the_next_hop_when_not_required(next_hop: CaptureServer) -> None:
    """With ready_requires_forward false, a next hop that is down leaves /readyz at 200."""
    endpoint = next_hop.endpoint
    next_hop.stop()

    with FalcoRisk(forward_endpoint=endpoint, ready_requires_forward="false") as sidecar:
        # /healthz answers as soon as the HTTP port listens, a moment before
        # start-up has finished; readiness follows without the next hop.
        sidecar.wait_until(lambda: sidecar.get("/readyz") == 200, STARTUP_TIMEOUT_S, "ready")
        status = sidecar.get("/readyz")

    assert status == 200


def test_startup_log_names_addresses_tls_metrics_and_detections(
    scraped: tuple[FalcoRisk, str], next_hop: CaptureServer
) -> None:
    """The JSON start-up line carries its facts as fields of their own."""
    sidecar, url = scraped

    (started,) = [e for e in sidecar.events() if "listening" in str(e["message"])]

    assert started["grpc_endpoint"] == sidecar.grpc_endpoint
    assert started["http_endpoint"] == sidecar.http_endpoint
    assert started["forward_endpoint"] == next_hop.endpoint
    assert started["tls"] == "off"
    assert started["metrics"] == f"Prometheus on {url}"
    assert started["detections"] == 1


def test_grpc_health_is_not_serving_while_draining(caplog: pytest.LogCaptureFixture) -> None:
    """During a drain the health service says NOT_SERVING and /readyz 503; the request finishes."""
    caplog.set_level(logging.INFO, logger="falco_risk.server")
    with CaptureServer() as hop:
        hop.set_reply(Reply(delay_s=3.0))
        config = Config(
            grpc_endpoint=f"{LOOPBACK}:0",
            http_endpoint=f"{LOOPBACK}:0",
            forward_endpoint=hop.endpoint,
        )
        server = Server(config, load_catalog())
        server.start()
        channel = grpc.insecure_channel(f"{LOOPBACK}:{server.grpc.port}")
        health = health_pb2_grpc.HealthStub(channel)
        answers: list[grpc.StatusCode] = []

        def send() -> None:
            try:
                LogsServiceStub(channel).Export(request_with(SHELL), timeout=20)
                answers.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                answers.append(error.code())

        sender = threading.Thread(target=send)
        sender.start()
        hop.wait_for_attempts(1, WAIT_S)
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        _wait(lambda: server.admission.draining)
        during = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        readyz = http_get(f"http://{LOOPBACK}:{server.http.port}/readyz")[0]
        sender.join(WAIT_S)
        stopper.join(WAIT_S)
        channel.close()

    assert during == health_pb2.HealthCheckResponse.NOT_SERVING
    assert readyz == 503
    assert answers == [grpc.StatusCode.OK]
    (stopped,) = [r for r in caplog.records if r.getMessage().startswith("falco-risk stopped")]
    assert stopped.getMessage().startswith("falco-risk stopped: 1 request(s) in flight drained in")
    assert stopped.drained == 1  # type: ignore[attr-defined]


def _wait(condition: object) -> None:
    deadline = threading.Event()
    for _ in range(int(WAIT_S / 0.02)):
        if condition():  # type: ignore[operator]
            return
        deadline.wait(0.02)
    raise TimeoutError("condition not met")
