"""Where falco-risk's own metrics go: pushed over OTLP, served to Prometheus, or nowhere.

Only metrics leave this way. falco-risk's logs go to stderr, never to an OTLP
exporter, so its own telemetry cannot come back through its log receiver.
"""

from __future__ import annotations

import logging
import threading
import uuid
from wsgiref.simple_server import WSGIServer

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import MeterProvider as ApiMeterProvider
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION, Resource
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from falco_risk import __version__
from falco_risk.config import Config, split_endpoint

logger = logging.getLogger(__name__)

SERVICE: str = "falco-risk"
OTLP_METRICS_PATH = "/v1/metrics"
# A push that takes longer than this is abandoned; the next one carries the
# same cumulative values, so nothing is lost but resolution.
EXPORT_TIMEOUT_SECONDS = 5.0
# The last push at shutdown gets this long, so that a collector that is down
# delays the exit of a draining pod by seconds, not by a retry schedule.
SHUTDOWN_TIMEOUT_SECONDS = 2.0


class MetricsExport:
    """The meter provider and its readers, as the configuration asks for them."""

    def __init__(self, config: Config) -> None:
        self.otlp_target = ""
        self.prometheus_port: int | None = None
        self._prometheus: tuple[WSGIServer, threading.Thread] | None = None
        self._registry: CollectorRegistry | None = None
        self._prometheus_endpoint = config.metrics_prometheus_endpoint

        readers: list[MetricReader] = []
        if config.metrics_otlp_endpoint:
            self.otlp_target = _otlp_target(config)
            readers.append(
                PeriodicExportingMetricReader(
                    _otlp_exporter(config.metrics_otlp_protocol, self.otlp_target),
                    export_interval_millis=config.metrics_interval * 1000,
                    export_timeout_millis=EXPORT_TIMEOUT_SECONDS * 1000,
                )
            )
        if config.metrics_prometheus_endpoint:
            # A registry of our own, so that nothing global is shared between servers.
            self._registry = CollectorRegistry(auto_describe=True)
            ProcessCollector(registry=self._registry)
            readers.append(PrometheusMetricReader(registry=self._registry))

        self._sdk = (
            MeterProvider(
                metric_readers=readers,
                resource=_resource(),
                shutdown_on_exit=False,
                # falco-risk records no traces, so exemplars would never be filled.
                exemplar_filter=AlwaysOffExemplarFilter(),
            )
            if readers
            else None
        )

    @property
    def provider(self) -> ApiMeterProvider:
        """The provider to create instruments from; a no-op one when nothing is exported."""
        return self._sdk or NoOpMeterProvider()

    def start(self) -> None:
        """Listen for Prometheus scrapes, if configured."""
        if self._registry is None:
            return
        host, port = split_endpoint(self._prometheus_endpoint)
        server, thread = start_http_server(port, host, self._registry)
        self._prometheus = (server, thread)
        self.prometheus_port = server.server_port

    def describe(self) -> str:
        """Where metrics go, for the start-up log."""
        places = []
        if self.otlp_target:
            places.append(f"OTLP to {self.otlp_target}")
        if self.prometheus_port is not None:
            host = self._prometheus_endpoint.rpartition(":")[0]
            places.append(f"Prometheus on http://{host}:{self.prometheus_port}/metrics")
        return ", ".join(places) or "off"

    def shutdown(self) -> None:
        """Push the last values and stop serving scrapes."""
        if self._sdk is not None:
            self._sdk.shutdown(timeout_millis=SHUTDOWN_TIMEOUT_SECONDS * 1000)
        if self._prometheus is not None:
            server, thread = self._prometheus
            server.shutdown()
            server.server_close()
            thread.join(timeout=1.0)


def _otlp_target(config: Config) -> str:
    endpoint = config.metrics_otlp_endpoint
    if config.metrics_otlp_protocol == "http":
        return f"http://{endpoint}{OTLP_METRICS_PATH}"
    return f"http://{endpoint}"


def _otlp_exporter(protocol: str, target: str) -> MetricExporter:
    if protocol == "http":
        return HttpMetricExporter(endpoint=target, timeout=EXPORT_TIMEOUT_SECONDS)
    return GrpcMetricExporter(endpoint=target, insecure=True, timeout=EXPORT_TIMEOUT_SECONDS)


def _resource() -> Resource:
    # OTEL_RESOURCE_ATTRIBUTES adds to these, e.g. k8s.pod.name from the downward API.
    return Resource.create(
        {
            SERVICE_NAME: SERVICE,
            SERVICE_VERSION: __version__,
            SERVICE_INSTANCE_ID: str(uuid.uuid4()),
        }
    )
