"""Process lifecycle: build the pipeline, start both receivers, drain and stop."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from falco_risk.admission import Admission
from falco_risk.allocator import keep_large_buffers
from falco_risk.catalog import Catalog
from falco_risk.config import Config
from falco_risk.console import ConsoleSink
from falco_risk.forwarder import GrpcForwarder, Sink
from falco_risk.pipeline import Limits, Pipeline
from falco_risk.receivers.grpc import GrpcReceiver
from falco_risk.receivers.http import HttpReceiver
from falco_risk.telemetry import Telemetry

logger = logging.getLogger(__name__)


class Server:
    """Owns the receivers, the pipeline and the sink of one ``falco-risk serve``."""

    def __init__(
        self, config: Config, catalog: Catalog, telemetry: Telemetry | None = None
    ) -> None:
        self.config = config
        keep_large_buffers()
        self._stopping = threading.Event()
        self._ready = False
        self.sink = _make_sink(config)
        self.admission = Admission(config.max_in_flight)
        self.pipeline = Pipeline(
            catalog,
            self.sink,
            Limits(config.forward_max_request_size, config.forward_timeout),
            telemetry,
        )
        self.grpc = GrpcReceiver(
            config.grpc_endpoint,
            self.pipeline,
            self.admission,
            config.max_request_size,
            config.retry_after,
        )
        self.http = HttpReceiver(
            config.http_endpoint,
            self.pipeline,
            self.admission,
            config.max_request_size,
            config.retry_after,
            ready=lambda: self._ready,
        )

    def start(self) -> None:
        self.grpc.start()
        self.http.start()
        self._ready = True
        detections = self.pipeline.tagger.catalog.detections
        logger.info(
            "falco-risk listening: OTLP/gRPC on %s, OTLP/HTTP on %s; forwarding to %s; "
            "%d detection(s) loaded: %s",
            _address(self.config.grpc_endpoint, self.grpc.port),
            _address(self.config.http_endpoint, self.http.port),
            self.sink.endpoint,
            len(detections),
            ", ".join(d.name for d in detections),
        )

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then drain; returns when stopped."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
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
        self._ready = False
        drained = self.admission.drain(grace)
        self.grpc.stop(grace=1.0)
        self.http.stop()
        self.sink.close()
        if drained:
            logger.info("falco-risk stopped; all requests in flight were answered")
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
    return GrpcForwarder(
        config.forward_endpoint,
        max_message_size=config.forward_max_request_size * 2,
        retry_after=config.retry_after,
        compression=config.forward_compression,
    )


def _address(endpoint: str, port: int) -> str:
    host = endpoint.rpartition(":")[0]
    return f"{host}:{port}"
