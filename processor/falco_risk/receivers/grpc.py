"""The OTLP/gRPC receiver: ``LogsService/Export`` plus the standard health service."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from falco_risk.admission import Admission
from falco_risk.auth import BearerCheck
from falco_risk.outcome import Outcome, retry_later
from falco_risk.pipeline import Pipeline
from falco_risk.receivers.grpc_gate import CountingExecutor, GatedMethod
from falco_risk.telemetry import REFUSED_AUTH, REFUSED_OVERLOAD
from falco_risk.tls import ServerTls

logger = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
EXPORT = f"/{SERVICE}/Export"
RETRY_INFO_TRAILER = "google.rpc.retryinfo-bin"
# Threads beyond the admission limit: half of them refuse exports over the
# limit at once, the other half stay free for health checks.
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
        tls: ServerTls | None = None,
        auth: BearerCheck | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._pipeline = pipeline
        self._admission = admission
        self._retry_after = retry_after
        self._auth = auth
        self.health = health.HealthServicer()
        pool = CountingExecutor(admission.limit + _SPARE_WORKERS, thread_name_prefix="grpc")
        self._server = grpc.server(
            pool,
            options=[
                ("grpc.max_receive_message_length", max_request_size),
                ("grpc.so_reuseport", 0),
                # Each open stream may hold a flow-control window of unread
                # bytes, so memory follows streams x window: cap both. Calls
                # past the stream cap wait on the client, with their data.
                ("grpc.http2.bdp_probe", 0),
                ("grpc.max_concurrent_streams", 2 * admission.limit + _SPARE_WORKERS),
            ],
        )
        self.gate = GatedMethod(
            EXPORT,
            self._export,
            self._refuse,
            pool,
            capacity=admission.limit + _SPARE_WORKERS // 2,
        )
        self._server.add_generic_rpc_handlers((self.gate,))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        if tls is None:
            self.port = self._server.add_insecure_port(endpoint)
        else:
            self.port = self._server.add_secure_port(endpoint, tls.grpc_credentials())
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
        self.gate.shutdown()

    def _export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if self._auth is not None and not self._auth.allows(_authorization(context)):
            self._pipeline.telemetry.refused(REFUSED_AUTH, "grpc")
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")
        with self._admission.slot() as admitted:
            if admitted:
                outcome = self._pipeline.export(request, context.time_remaining(), "grpc")
            else:
                self._pipeline.telemetry.refused(REFUSED_OVERLOAD, "grpc")
                outcome = _overloaded(self._retry_after, self._admission.draining)
        if not outcome.ok:
            _abort(context, outcome)
        return outcome.response

    def _refuse(self, context: grpc.ServicerContext) -> None:
        """Answer a call the gate turned away before its message was read."""
        self._pipeline.telemetry.refused(REFUSED_OVERLOAD, "grpc")
        _abort(context, _overloaded(self._retry_after, self._admission.draining))


def _abort(context: grpc.ServicerContext, outcome: Outcome) -> NoReturn:
    context.abort_with_status(_grpc_status(outcome))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def _authorization(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata():
        if key == "authorization" and isinstance(value, str):
            return value
    return None


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
