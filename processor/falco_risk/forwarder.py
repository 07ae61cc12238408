"""The OTLP/gRPC client toward the next hop.

The forwarder makes one attempt per call and reports what the next hop said.
It does not retry: the upstream collector retries with its own queue, which is
where data waits safely, so a retryable failure here becomes UNAVAILABLE with
RetryInfo upstream.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Protocol

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from falco_risk.auth import TokenSource
from falco_risk.outcome import RETRYABLE_CODES, Outcome, ok, retry_later
from falco_risk.tls import ClientTls

logger = logging.getLogger(__name__)

_RECONNECT_INITIAL_MS = 250
_RECONNECT_MAX_MS = 5000

EXPORT_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


class Sink(Protocol):
    """Where processed requests go: the next hop, or the console."""

    endpoint: str

    def send(self, payload: bytes, timeout: float) -> Outcome:
        """Deliver one serialized ExportLogsServiceRequest."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class GrpcForwarder:
    """Sends serialized requests to an OTLP/gRPC endpoint and maps its answer."""

    def __init__(
        self,
        endpoint: str,
        max_message_size: int,
        retry_after: float,
        compression: str = "none",
        tls: ClientTls | None = None,
        server_name: str = "",
        headers: Mapping[str, str] | None = None,
        token: TokenSource | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._retry_after = retry_after
        self._compression = grpc.Compression.Gzip if compression == "gzip" else None
        self._options: list[tuple[str, object]] = [
            ("grpc.max_send_message_length", max_message_size),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            # gRPC's default reconnect back-off grows to two minutes; after the
            # next hop comes back the upstream's retries would keep getting
            # UNAVAILABLE until then. Reconnect within a few seconds instead.
            ("grpc.initial_reconnect_backoff_ms", _RECONNECT_INITIAL_MS),
            ("grpc.max_reconnect_backoff_ms", _RECONNECT_MAX_MS),
            ("grpc.min_reconnect_backoff_ms", _RECONNECT_INITIAL_MS),
        ]
        if server_name:
            self._options.append(("grpc.ssl_target_name_override", server_name))
        self._tls = tls
        self._headers = tuple((name.lower(), value) for name, value in (headers or {}).items())
        self._token = token
        self._lock = threading.Lock()
        self._connect()

    def _connect(self) -> None:
        if self._tls is None:
            channel = grpc.insecure_channel(
                self.endpoint, options=self._options, compression=self._compression
            )
        else:
            channel = grpc.secure_channel(
                self.endpoint,
                self._tls.credentials(),
                options=self._options,
                compression=self._compression,
            )
        # Identity serializers: the pipeline hands over bytes and wants bytes back.
        export = channel.unary_unary(
            EXPORT_METHOD, request_serializer=None, response_deserializer=None
        )
        # A replaced channel is not closed here: calls still running on it
        # finish, and gRPC closes it once nothing refers to it.
        self._channel, self._export = channel, export

    @property
    def channel(self) -> grpc.Channel:
        """The channel to the next hop, for readiness checks that watch its state."""
        return self._channel

    def send(self, payload: bytes, timeout: float) -> Outcome:
        if self._tls is not None and self._tls.reload_if_changed():
            with self._lock:
                self._connect()
        try:
            response: bytes = self._export(payload, timeout=timeout, metadata=self._metadata())
        except grpc.RpcError as error:
            return self._failure(error)
        return ok(response)

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        if self._token is None:
            return self._headers
        return (*self._headers, ("authorization", f"Bearer {self._token.current()}"))

    def _failure(self, error: grpc.RpcError) -> Outcome:
        code: grpc.StatusCode = error.code()
        details: str = error.details() or ""
        message = f"next hop {self.endpoint} answered {code.name}: {details}"
        delay = _retry_delay(error)

        if code in RETRYABLE_CODES or (
            code is grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None
        ):
            return retry_later(message, delay if delay is not None else self._retry_after)
        return Outcome(code, message)

    def close(self) -> None:
        self._channel.close()


def _retry_delay(error: grpc.RpcError) -> float | None:
    """The RetryInfo delay the next hop sent with its status, if any."""
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:
        # The details disagree with the status line; treat as no RetryInfo.
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None
