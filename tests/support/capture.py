"""An in-process OTLP/gRPC logs receiver that records what it is sent."""

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Self, TypeAlias

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from support.otlp import Captured, flatten, record_count
from support.ports import LOOPBACK

MAX_MESSAGE_BYTES = 128 * 1024 * 1024
SERVER_THREADS = 8
# Bit 0 of gRPC's enabled-compression bitset is "identity".
IDENTITY_ONLY = 1
# The standard place for error details, read by Go and Rust clients.
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# The trailer the reference Python OTLP exporter reads its back-off from.
PYTHON_RETRY_INFO_KEY = "google.rpc.retryinfo-bin"
Metadata: TypeAlias = dict[str, str | bytes]


@dataclass(frozen=True)
class Reply:
    """How a capture server answers one Export call."""

    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""
    # Seconds, sent as google.rpc.RetryInfo with an error code.
    retry_delay_s: float | None = None
    # Sent as partial_success with an OK answer.
    rejected: int = 0
    error_message: str = ""
    # Seconds to wait before answering.
    delay_s: float = 0.0
    # Overrides the HTTP status derived from `code` (HTTP capture only).
    http_status: int | None = None

    @property
    def accepted(self) -> bool:
        """Whether this answer tells the sender its data was taken."""
        return self.code == grpc.StatusCode.OK


OK = Reply()


@dataclass(frozen=True)
class Attempt:
    """One Export call as a capture server saw it."""

    request: ExportLogsServiceRequest
    reply: Reply
    metadata: Metadata = field(default_factory=dict)

    @property
    def records(self) -> int:
        """Number of log records in the request."""
        return record_count(self.request)


class Recorder:
    """Thread-safe store of attempts and the queue of replies to give."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._attempts: list[Attempt] = []
        self._queued: deque[Reply] = deque()
        self._default = OK

    def set_reply(self, reply: Reply) -> None:
        """Answer every later call with `reply` once queued replies are used up."""
        with self._changed:
            self._default = reply

    def queue_replies(self, *replies: Reply) -> None:
        """Answer the next calls with `replies`, one each, in order."""
        with self._changed:
            self._queued.extend(replies)

    def record(self, request: ExportLogsServiceRequest, metadata: Metadata) -> Reply:
        """Store one call and return the reply it gets."""
        with self._changed:
            reply = self._queued.popleft() if self._queued else self._default
            self._attempts.append(Attempt(request, reply, metadata))
            self._changed.notify_all()
            return reply

    def attempts(self) -> list[Attempt]:
        """Every call so far, accepted or not, in arrival order."""
        with self._changed:
            return list(self._attempts)

    def requests(self) -> list[ExportLogsServiceRequest]:
        """The requests answered with OK, in arrival order."""
        return [a.request for a in self.attempts() if a.reply.accepted]

    def records(self) -> list[Captured]:
        """Every log record of the accepted requests."""
        return flatten(self.requests())

    def record_count(self) -> int:
        """Number of records in the accepted requests."""
        return sum(a.records for a in self.attempts() if a.reply.accepted)

    def wait_for_records(self, count: int, timeout: float) -> list[Captured]:
        """Wait until at least `count` records were accepted and return them all."""
        self._wait(lambda: self.record_count() >= count, timeout, f"{count} records")
        return self.records()

    def wait_for_attempts(self, count: int, timeout: float) -> list[Attempt]:
        """Wait until at least `count` calls arrived and return them all."""
        self._wait(lambda: len(self._attempts) >= count, timeout, f"{count} calls")
        return self.attempts()

    def clear(self) -> None:
        """Forget every attempt and queued reply."""
        with self._changed:
            self._attempts.clear()
            self._queued.clear()

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(done, timeout):
                raise TimeoutError(
                    f"no {what} after {timeout}s; got {len(self._attempts)} calls "
                    f"carrying {sum(a.records for a in self._attempts)} records"
                )


@dataclass(frozen=True)
class _RpcStatus(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, bytes], ...]


def rpc_status(reply: Reply) -> grpc.Status:
    """Build the gRPC status for an error reply, with RetryInfo if asked."""
    # google.rpc.Code numbers are the first element of grpc.StatusCode values.
    status = Status(code=reply.code.value[0], message=reply.message)
    trailers: tuple[tuple[str, bytes], ...] = ()
    if reply.retry_delay_s is not None:
        delay = Duration()
        delay.FromNanoseconds(int(reply.retry_delay_s * 1e9))
        retry_info = RetryInfo(retry_delay=delay)
        status.details.add().Pack(retry_info)
        trailers = ((PYTHON_RETRY_INFO_KEY, retry_info.SerializeToString()),)
    trailers += ((STATUS_DETAILS_KEY, status.SerializeToString()),)
    return _RpcStatus(reply.code, reply.message, trailers)


def response(reply: Reply) -> ExportLogsServiceResponse:
    """Build the OK response, with partial_success if the reply rejects records."""
    if not reply.rejected and not reply.error_message:
        return ExportLogsServiceResponse()
    partial = ExportLogsPartialSuccess(
        rejected_log_records=reply.rejected, error_message=reply.error_message
    )
    return ExportLogsServiceResponse(partial_success=partial)


class _Servicer(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, recorder: Recorder, stopping: threading.Event) -> None:
        self._recorder = recorder
        self._stopping = stopping

    # The method name is fixed by the LogsService definition.
    def Export(  # noqa: N802
        self, request: ExportLogsServiceRequest, context: grpc.ServicerContext
    ) -> ExportLogsServiceResponse:
        metadata: Metadata = dict(context.invocation_metadata())
        reply = self._recorder.record(request, metadata)
        if reply.delay_s:
            self._stopping.wait(reply.delay_s)

        if not reply.accepted:
            context.abort_with_status(rpc_status(reply))
        return response(reply)


class CaptureServer(Recorder):
    """A real grpc.server on loopback serving opentelemetry LogsService/Export."""

    def __init__(self, port: int = 0, host: str = LOOPBACK, *, accept_gzip: bool = True) -> None:
        """Prepare a server on `port` (0: any free one); nothing listens before start().

        With accept_gzip=False gRPC itself refuses gzip-compressed calls with
        UNIMPLEMENTED before they reach the recorder, as some servers do.
        """
        super().__init__()
        self.host = host
        self.port = port
        self.accept_gzip = accept_gzip
        self._server: grpc.Server | None = None
        self._stopping = threading.Event()

    @property
    def endpoint(self) -> str:
        """host:port to send to."""
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Listen, on the same port as before if this server ran already."""
        if self._server is not None:
            raise RuntimeError(f"capture server on {self.endpoint} runs already")
        self._stopping = threading.Event()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=SERVER_THREADS),
            options=self._options(),
        )
        # The generated grpc module carries no type annotations.
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _Servicer(self, self._stopping), server
        )
        bound = server.add_insecure_port(f"{self.host}:{self.port}")
        if not bound:
            raise OSError(f"cannot listen on {self.host}:{self.port}")

        server.start()
        self.port = bound
        self._server = server

    def _options(self) -> list[tuple[str, int]]:
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            # Never share the port with a leftover listener.
            ("grpc.so_reuseport", 0),
        ]
        if not self.accept_gzip:
            options.append(("grpc.compression_enabled_algorithms_bitset", IDENTITY_ONLY))
        return options

    def stop(self, grace: float | None = None) -> None:
        """Stop listening; calls still waiting on a delay end at once."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.stop(grace).wait()
        self._server = None

    def restart(self, downtime_s: float = 0.0) -> None:
        """Stop, stay down for `downtime_s` seconds, and listen on the same port."""
        self.stop()
        time.sleep(downtime_s)
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
