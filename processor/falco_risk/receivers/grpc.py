"""The OTLP/gRPC receiver: ``LogsService/Export`` plus the standard health service."""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from falco_risk.admission import Admission
from falco_risk.outcome import Outcome, retry_later
from falco_risk.pipeline import Pipeline
from falco_risk.telemetry import REFUSED_OVERLOAD

logger = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
RETRY_INFO_TRAILER = "google.rpc.retryinfo-bin"
# Threads beyond the admission limit, so that requests over the limit are
# refused at once by a free thread instead of waiting in gRPC's own queue.
_SPARE_WORKERS = 8


class GrpcReceiver:
    """Serves OTLP/gRPC log exports on one address."""

    def __init__(
        self,
        endpoint: str,
        pipeline: Pipeline,
        admission: Admission,
        max_request_size: int,
        retry_after: float,
    ) -> None:
        self.endpoint = endpoint
        self._pipeline = pipeline
        self._admission = admission
        self._retry_after = retry_after
        self.health = health.HealthServicer()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=admission.limit + _SPARE_WORKERS, thread_name_prefix="grpc"
            ),
            options=[
                ("grpc.max_receive_message_length", max_request_size),
                ("grpc.so_reuseport", 0),
            ],
        )
        # No deserializer: the handler receives the request bytes untouched.
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export)}
        )
        self._server.add_generic_rpc_handlers((handler,))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self.port = self._server.add_insecure_port(endpoint)
        if self.port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {endpoint}")

    def start(self) -> None:
        self._server.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float) -> None:
        """Refuse new calls, let those running finish for up to ``grace`` seconds."""
        self.health.enter_graceful_shutdown()
        self._server.stop(grace).wait(grace + 1)

    def _export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._admission.slot() as admitted:
            if admitted:
                outcome = self._pipeline.export(request, context.time_remaining(), "grpc")
            else:
                self._pipeline.telemetry.refused(REFUSED_OVERLOAD, "grpc")
                outcome = _overloaded(self._retry_after, self._admission.draining)
        if outcome.ok:
            return outcome.response
        context.abort_with_status(_grpc_status(outcome))
        raise AssertionError("abort_with_status returned")  # pragma: no cover


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def _grpc_status(outcome: Outcome) -> grpc.Status:
    """The status with its details, RetryInfo also in the trailer some OTLP clients read.

    The OpenTelemetry Python exporter takes the delay from a
    ``google.rpc.retryinfo-bin`` trailer; other clients read the RetryInfo in
    ``grpc-status-details-bin``. Both are sent.
    """
    base = rpc_status.to_status(outcome.status_proto())
    trailers = tuple(base.trailing_metadata)
    info = outcome.retry_info()
    if info is not None:
        trailers += ((RETRY_INFO_TRAILER, info.SerializeToString()),)
    return _Status(base.code, base.details, trailers)


def _overloaded(delay: float, draining: bool) -> Outcome:
    if draining:
        return retry_later("falco-risk is shutting down; send to another instance or retry", delay)
    return retry_later("falco-risk is at its in-flight request limit; retry later", delay)
