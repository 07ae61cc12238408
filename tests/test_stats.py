"""Tests for ``falco-risk stats`` against a running server's /metrics."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from falco_risk import stats
from falco_risk.catalog import load_catalog
from falco_risk.config import Config
from falco_risk.server import Server
from otlp_builders import falco_json, request_with
from support.ports import LOOPBACK, free_port

SHELL = falco_json(
    "10:00:00.0: Notice A shell was spawned in a container with an attached terminal",
    **{"user.name": "root", "container.name": "web"},
)


@pytest.fixture
def unreachable() -> Iterator[Server]:
    """A server with /metrics whose next hop refuses connections."""
    config = Config(
        grpc_endpoint=f"{LOOPBACK}:0",
        http_endpoint=f"{LOOPBACK}:0",
        forward_endpoint=f"{LOOPBACK}:{free_port()}",
        forward_timeout=2.0,
        metrics_prometheus_endpoint=f"{LOOPBACK}:0",
    )
    server = Server(config, load_catalog())
    server.start()
    yield server
    server.stop()


def run_once(url: str, interval: float) -> tuple[int, str]:
    out = io.StringIO()
    code = stats.main(argparse.Namespace(url=url, interval=interval, once=True), out)
    return code, out.getvalue()


def test_stats_shows_failures_by_code_and_their_rate(unreachable: Server) -> None:
    """Failed sends appear under their gRPC code, with a rate over the interval."""
    url = f"http://{LOOPBACK}:{unreachable.metrics.prometheus_port}/metrics"
    with grpc.insecure_channel(f"{LOOPBACK}:{unreachable.grpc.port}") as channel:
        for _ in range(2):
            with pytest.raises(grpc.RpcError):
                LogsServiceStub(channel).Export(request_with(SHELL), timeout=10)

    code, text = run_once(url, 0.0)

    assert code == 0
    failures = text.split("downstream failures by code\n", 1)[1].splitlines()[0].split()
    assert failures == ["UNAVAILABLE", "2", "-"]
    assert ["records", "forwarded", "0", "-"] in [line.split() for line in text.splitlines()]


def test_stats_of_a_page_without_falco_risk_metrics_is_an_error(unreachable: Server) -> None:
    """A URL that answers but holds no falco-risk metrics is reported, exit code 1."""
    url = f"http://{LOOPBACK}:{unreachable.http.port}/healthz"

    code, text = run_once(url, 0.0)

    assert code == 1
    assert text == ""
