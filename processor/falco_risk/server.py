"""Process lifecycle: build the pipeline, start both receivers, drain and stop."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from falco_risk.admission import Admission
from falco_risk.allocator import keep_large_buffers
from falco_risk.auth import TokenSource, bearer_check
from falco_risk.catalog import Catalog
from falco_risk.config import Config
from falco_risk.console import ConsoleSink
from falco_risk.forwarder import GrpcForwarder, Sink
from falco_risk.metrics_export import MetricsExport
from falco_risk.pipeline import Limits, Pipeline
from falco_risk.readiness import NextHopProbe, Readiness
from falco_risk.receivers.grpc import GrpcReceiver
from falco_risk.receivers.http import HttpReceiver
from falco_risk.reload import CatalogReloader
from falco_risk.telemetry import Telemetry
from falco_risk.tls import ClientTls, ServerTls

logger = logging.getLogger(__name__)


class Server:
    """Owns the receivers, the pipeline and the sink of one ``falco-risk serve``."""

    def __init__(
        self, config: Config, catalog: Catalog, telemetry: Telemetry | None = None
    ) -> None:
        self.config = config
        keep_large_buffers()
        self._stopping = threading.Event()
        self.sink = _make_sink(config)
        self.admission = Admission(config.max_in_flight)
        self.metrics = MetricsExport(config)
        telemetry = telemetry or Telemetry(self.metrics.provider)
        self.pipeline = Pipeline(
            catalog,
            self.sink,
            Limits(
                config.forward_max_request_size,
                config.forward_timeout,
                config.max_attribute_length,
            ),
            telemetry,
        )
        self.pipeline.telemetry.detections.series_limit = config.count_series_limit
        self.reloader = CatalogReloader(
            config.catalog, self.pipeline, config.catalog_reload_interval, self.pipeline.telemetry
        )
        telemetry.observe(lambda: self.admission.in_flight, lambda: self.pipeline.tagger.catalog)
        self.readiness = Readiness(self.admission, _next_hop_probe(config, self.sink))
        server_tls = None
        if config.tls:
            server_tls = ServerTls(
                config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file
            )
        auth = bearer_check(config.auth_token_file, config.auth_token)
        self.grpc = GrpcReceiver(
            config.grpc_endpoint,
            self.pipeline,
            self.admission,
            config.max_request_size,
            config.retry_after,
            tls=server_tls,
            auth=auth,
        )
        self.http = HttpReceiver(
            config.http_endpoint,
            self.pipeline,
            self.admission,
            config.max_request_size,
            config.retry_after,
            ready=self.readiness,
            tls=server_tls,
            auth=auth,
        )
        self.metrics.start()

    def start(self) -> None:
        self.grpc.start()
        self.http.start()
        self.reloader.start()
        self.readiness.started()
        catalog = self.pipeline.tagger.catalog
        detections = catalog.enabled
        fields = {
            "grpc_endpoint": _address(self.config.grpc_endpoint, self.grpc.port),
            "http_endpoint": _address(self.config.http_endpoint, self.http.port),
            "forward_endpoint": self.sink.endpoint,
            "tls": "on" if self.config.tls else "off",
            "security": describe_security(self.config),
            "metrics": self.metrics.describe(),
            "detections": len(detections),
            "catalog_version": catalog.version,
        }
        logger.info(
            "falco-risk listening: OTLP/gRPC on %s, OTLP/HTTP on %s; forwarding to %s; "
            "tls: %s (%s); metrics: %s; %d detection(s) enabled (catalog %s): %s",
            *fields.values(),
            ", ".join(d.name for d in detections),
            extra=fields,
        )

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then drain; returns when stopped."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGHUP, lambda signum, frame: self.reloader.request())
        self.start()
        self._stopping.wait()
        self.stop()

    def request_stop(self) -> None:
        self._stopping.set()

    def stop(self) -> None:
        """Refuse new requests, wait for those in flight, close everything."""
        grace = self.config.drain_timeout
        in_flight = self.admission.in_flight
        logger.info("falco-risk stopping: draining %d request(s) in flight", in_flight)
        # Health checks see NOT_SERVING for the whole drain, not only at the end.
        self.grpc.health.enter_graceful_shutdown()
        started = time.monotonic()
        drained = self.admission.drain(grace)
        elapsed = time.monotonic() - started
        self.grpc.stop(grace=1.0)
        self.http.stop()
        self.reloader.stop()
        self.readiness.close()
        self.sink.close()
        self.pipeline.flush_warnings()
        self.metrics.shutdown()
        if drained:
            logger.info(
                "falco-risk stopped: %d request(s) in flight drained in %.1fs",
                in_flight,
                elapsed,
                extra={"drained": in_flight, "drain_seconds": round(elapsed, 3)},
            )
        else:
            logger.warning(
                "falco-risk stopped after %.0fs with %d request(s) unanswered; "
                "their senders will retry them",
                grace,
                self.admission.in_flight,
            )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping.set()


def _make_sink(config: Config) -> Sink:
    if not config.forward_endpoint:
        return ConsoleSink()
    tls = None
    if config.forward_uses_tls:
        tls = ClientTls(
            config.forward_tls_ca_file, config.forward_tls_cert_file, config.forward_tls_key_file
        )
    token = None
    if config.forward_auth_token_file:
        token = TokenSource(config.forward_auth_token_file, name="forward_auth_token")
    return GrpcForwarder(
        config.forward_endpoint,
        max_message_size=config.forward_max_request_size * 2,
        retry_after=config.retry_after,
        compression=config.forward_compression,
        tls=tls,
        server_name=config.forward_tls_server_name,
        headers=config.forward_headers,
        token=token,
    )


def _next_hop_probe(config: Config, sink: Sink) -> NextHopProbe | None:
    if not config.ready_requires_forward or not isinstance(sink, GrpcForwarder):
        return None
    return NextHopProbe(sink.channel, sink.endpoint)


def describe_security(config: Config) -> str:
    """One line saying which protections are on, naming files but never secrets."""
    if config.tls:
        receive = f"TLS with {config.tls_cert_file}"
        if config.tls_client_ca_file:
            receive += f", client certificates required (CA {config.tls_client_ca_file})"
    else:
        receive = "plaintext"
    if config.auth_token_file:
        token = f"bearer token from {config.auth_token_file}"
    elif config.auth_token:
        token = "bearer token from FALCO_RISK_AUTH_TOKEN"
    else:
        token = "no token"
    if not config.forward_endpoint:
        forward = "none (stdout)"
    elif config.forward_uses_tls:
        forward = "TLS" + (" with a client certificate" if config.forward_tls_cert_file else "")
    else:
        forward = "plaintext"
    if config.forward_auth_token_file:
        forward += ", bearer token"
    if config.forward_headers:
        forward += f", headers {', '.join(sorted(config.forward_headers))}"
    return f"receivers {receive}, {token}; next hop {forward}"


def _address(endpoint: str, port: int) -> str:
    host = endpoint.rpartition(":")[0]
    return f"{host}:{port}"
