"""An in-process OTLP/gRPC metrics receiver that records what it is sent."""

import threading
from collections.abc import Callable
from concurrent import futures
from typing import Self

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from support.otlp import Value, attributes
from support.ports import LOOPBACK

SERVER_THREADS = 4
Point = tuple[frozenset[tuple[str, Value]], float]


class _Servicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, capture: "MetricsCapture") -> None:
        self._capture = capture

    def Export(  # noqa: N802 - the gRPC method's own name
        self, request: ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> ExportMetricsServiceResponse:
        self._capture.record(request, dict(context.invocation_metadata()))
        return ExportMetricsServiceResponse()


class MetricsCapture:
    """A real grpc.server on loopback serving opentelemetry MetricsService/Export."""

    def __init__(self, host: str = LOOPBACK) -> None:
        self.host = host
        self.port = 0
        self._changed = threading.Condition()
        self._requests: list[ExportMetricsServiceRequest] = []
        self._server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        """host:port to send to."""
        return f"{self.host}:{self.port}"

    def record(self, request: ExportMetricsServiceRequest, metadata: dict[str, object]) -> None:
        """Keep one export."""
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def requests(self) -> list[ExportMetricsServiceRequest]:
        """Every export so far, in arrival order."""
        with self._changed:
            return list(self._requests)

    def latest(self, name: str) -> Metric | None:
        """The most recent data of metric ``name``, or None if none arrived."""
        found = None
        for request in self.requests():
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        if metric.name == name:
                            found = metric
        return found

    def values(self, name: str) -> dict[frozenset[tuple[str, Value]], float]:
        """The latest value of each point of a sum or gauge, keyed by its attributes."""
        metric = self.latest(name)
        if metric is None:
            return {}
        kind = metric.WhichOneof("data")
        points = metric.sum.data_points if kind == "sum" else metric.gauge.data_points
        return {
            frozenset(attributes(point.attributes).items()): (
                point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
            )
            for point in points
        }

    def wait_for(self, done: Callable[["MetricsCapture"], bool], timeout: float) -> None:
        """Wait until ``done(self)`` holds after some export, or raise TimeoutError."""
        with self._changed:
            if not self._changed.wait_for(lambda: done(self), timeout):
                raise TimeoutError(
                    f"condition not met after {timeout}s and {len(self._requests)} exports"
                )

    def start(self) -> None:
        """Listen on a free loopback port."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=SERVER_THREADS))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Servicer(self), server)
        self.port = server.add_insecure_port(f"{self.host}:0")
        server.start()
        self._server = server

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.stop(None).wait()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
