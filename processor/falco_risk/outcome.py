"""What became of one export request, and how each protocol reports it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from http import HTTPStatus

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

# The gRPC codes the OTLP specification lets a client retry. RESOURCE_EXHAUSTED
# is retryable only when the server sends RetryInfo with it.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

_HTTP_STATUS = {
    grpc.StatusCode.OK: HTTPStatus.OK,
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
}


@dataclass(frozen=True)
class Outcome:
    """The answer owed to the upstream: a status and, on success, the response bytes."""

    code: grpc.StatusCode
    message: str = ""
    response: bytes = b""
    retry_after: float | None = None
    # An HTTP status for outcomes that only exist in OTLP/HTTP (415).
    http: HTTPStatus | None = None

    @property
    def ok(self) -> bool:
        return self.code is grpc.StatusCode.OK

    def retry_info(self) -> error_details_pb2.RetryInfo | None:
        """The delay as a ``google.rpc.RetryInfo``, when the client should come back later."""
        if self.retry_after is None:
            return None
        seconds = max(self.retry_after, 0.0)
        delay = duration_pb2.Duration(
            seconds=int(seconds), nanos=int((seconds % 1) * 1_000_000_000)
        )
        return error_details_pb2.RetryInfo(retry_delay=delay)

    def status_proto(self) -> status_pb2.Status:
        """A ``google.rpc.Status``, carrying RetryInfo when there is a delay."""
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        info = self.retry_info()
        if info is not None:
            detail = any_pb2.Any()
            detail.Pack(info)
            status.details.append(detail)
        return status

    @property
    def http_status(self) -> HTTPStatus:
        """The HTTP status OTLP/HTTP uses for this outcome."""
        if self.http is not None:
            return self.http
        return _HTTP_STATUS.get(self.code, HTTPStatus.INTERNAL_SERVER_ERROR)

    def retry_after_header(self) -> str | None:
        """Whole seconds for an HTTP ``Retry-After`` header, when there is a delay."""
        if self.retry_after is None:
            return None
        return str(max(1, math.ceil(self.retry_after)))


def ok(response: bytes = b"") -> Outcome:
    """A successful outcome with the serialized ExportLogsServiceResponse."""
    return Outcome(grpc.StatusCode.OK, response=response)


def retry_later(message: str, delay: float) -> Outcome:
    """UNAVAILABLE with RetryInfo: the upstream keeps the data and sends it again."""
    return Outcome(grpc.StatusCode.UNAVAILABLE, message, retry_after=delay)


def invalid(message: str) -> Outcome:
    """INVALID_ARGUMENT: the request can never succeed as sent."""
    return Outcome(grpc.StatusCode.INVALID_ARGUMENT, message)
