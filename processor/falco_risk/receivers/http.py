"""The OTLP/HTTP receiver: ``POST /v1/logs`` in protobuf or JSON, plus health endpoints."""

from __future__ import annotations

import logging
import socket
import ssl
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from falco_risk import otlp_json
from falco_risk.admission import Admission
from falco_risk.auth import BearerCheck
from falco_risk.config import split_endpoint
from falco_risk.outcome import Outcome, invalid
from falco_risk.pipeline import Pipeline
from falco_risk.receivers.drain import Drainer
from falco_risk.receivers.grpc import _overloaded
from falco_risk.telemetry import REFUSED_AUTH, REFUSED_BAD_DATA, REFUSED_OVERLOAD, REFUSED_SIZE
from falco_risk.tls import ServerTls

logger = logging.getLogger(__name__)

LOGS_PATH = "/v1/logs"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# A client that stops sending mid-request releases its thread after this long.
_SOCKET_TIMEOUT_SECONDS = 60
# A refused body up to this size is read and dropped so that the client, still
# sending, can read the answer; a larger one is cut off by closing.
_DRAIN_LIMIT = 16 * 1024 * 1024
# How quickly the accept loop notices a shutdown request.
_POLL_SECONDS = 0.1
# A TLS client gets this long to finish its handshake.
_HANDSHAKE_SECONDS = 10
# Open connections allowed per admitted request: idle keep-alive connections
# hold a thread each, and past this bound new ones are answered 503 at once.
_CONNECTIONS_PER_SLOT = 4
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


class RequestTooLargeError(ValueError):
    """The body, after decompression, exceeds the request limit."""


class UnsupportedEncodingError(ValueError):
    """The body is compressed with an encoding the receiver does not read."""


@dataclass(frozen=True)
class _Context:
    """What every request handler of one receiver shares."""

    pipeline: Pipeline
    admission: Admission
    max_request_size: int
    retry_after: float
    ready: Callable[[], bool]
    auth: BearerCheck | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 makes the kernel drop connections
    # under a burst, which clients see as resets rather than a 503.
    request_queue_size = 1024
    context: _Context
    tls: ServerTls | None = None
    max_connections = 0

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.drainer = Drainer()
        self._connections = 0
        self._connections_lock = threading.Lock()

    def process_request(self, request: _Request, client_address: _Address) -> None:
        # Runs on the accept loop: a connection past the bound is answered
        # here, without a thread, and closed.
        with self._connections_lock:
            busy = self._connections >= self.max_connections
            if not busy:
                self._connections += 1
        if busy:
            connection = cast(socket.socket, request)
            _answer_busy(connection, self.context.retry_after)
            self.drainer.add(connection)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: _Request, client_address: _Address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections -= 1

    def finish_request(self, request: _Request, client_address: _Address) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        # The handshake runs on the connection's own thread, so a slow or
        # silent client delays nobody else.
        plain = cast(socket.socket, request)
        plain.settimeout(_HANDSHAKE_SECONDS)
        try:
            secure = self.tls.ssl_context().wrap_socket(plain, server_side=True)
        except (ssl.SSLError, OSError):
            # Plaintext clients, unknown client certificates and dropped
            # handshakes end here; the client sees the connection close.
            return
        try:
            super().finish_request(secure, client_address)
        finally:
            self.shutdown_request(secure)

    def handle_error(self, request: _Request, client_address: _Address) -> None:
        # A client that goes away mid-reply is not falco-risk's error.
        logger.debug("connection from %s ended: %r", client_address, sys.exc_info()[1])


_Request = socket.socket | tuple[bytes, socket.socket]
_Address = tuple[str, int] | str


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class HttpReceiver:
    """Serves OTLP/HTTP log exports and the health endpoints on one address."""

    def __init__(
        self,
        endpoint: str,
        pipeline: Pipeline,
        admission: Admission,
        max_request_size: int,
        retry_after: float,
        ready: Callable[[], bool],
        tls: ServerTls | None = None,
        auth: BearerCheck | None = None,
    ) -> None:
        self.endpoint = endpoint
        host, port = split_endpoint(endpoint)
        server_class = _IPv6Server if ":" in host else _Server
        self._server = server_class((host, port), _OtlpHandler)
        self._server.context = _Context(
            pipeline, admission, max_request_size, retry_after, ready, auth
        )
        self._server.tls = tls
        self._server.max_connections = admission.limit * _CONNECTIONS_PER_SLOT
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name="http-receiver",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting connections; requests already being handled finish on their threads."""
        self._server.shutdown()
        self._server.server_close()
        self._server.drainer.stop()


class _OtlpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "falco-risk"
    timeout = _SOCKET_TIMEOUT_SECONDS

    @property
    def context(self) -> _Context:
        return cast(_Server, self.server).context

    def finish(self) -> None:
        super().finish()
        if self.close_connection:
            # The request may be partly unread; a copy of the socket goes to
            # the drainer so this thread is free at once.
            connection = self.connection
            self.server.drainer.add(  # type: ignore[attr-defined]
                socket.fromfd(connection.fileno(), connection.family, connection.type)
            )

    def log_message(self, format: str, *args: object) -> None:
        # One line per request would flood the log; statuses are counted instead.
        return

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply_text(HTTPStatus.OK, "ok")
        elif self.path == "/readyz":
            is_ready = self.context.ready() and not self.context.admission.draining
            self._reply_text(
                HTTPStatus.OK if is_ready else HTTPStatus.SERVICE_UNAVAILABLE,
                "ready" if is_ready else "not ready",
            )
        elif self.path == LOGS_PATH:
            self._method_not_allowed()
        else:
            self._reply_text(HTTPStatus.NOT_FOUND, "not found")

    def do_POST(self) -> None:
        if self.path != LOGS_PATH:
            self._discard_body()
            self._reply_text(HTTPStatus.NOT_FOUND, "not found")
            return

        auth = self.context.auth
        if auth is not None and not auth.allows(self.headers.get("Authorization")):
            # The body is not read: an unauthenticated client may not make
            # falco-risk receive megabytes.
            self.close_connection = True
            self.context.pipeline.telemetry.refused(REFUSED_AUTH, "http")
            outcome = Outcome(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")
            self._reply_outcome(outcome, PROTOBUF)
            return

        media_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type not in (PROTOBUF, JSON):
            self.context.pipeline.telemetry.refused(REFUSED_BAD_DATA, "http")
            self._discard_body()
            self._reply_text(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type must be {PROTOBUF} or {JSON}",
            )
            return

        outcome = self._handle_export(media_type)
        self._reply_outcome(outcome, media_type)

    def do_PUT(self) -> None:
        self._method_not_allowed()

    def do_DELETE(self) -> None:
        self._method_not_allowed()

    def do_PATCH(self) -> None:
        self._method_not_allowed()

    def _handle_export(self, media_type: str) -> Outcome:
        # Admission comes before the body is read, so that memory holds at
        # most max_in_flight bodies however many clients send at once.
        with self.context.admission.slot() as admitted:
            if admitted:
                return self._read_and_export(media_type)
        self.close_connection = True
        self.context.pipeline.telemetry.refused(REFUSED_OVERLOAD, "http")
        return _overloaded(self.context.retry_after, self.context.admission.draining)

    def _read_and_export(self, media_type: str) -> Outcome:
        try:
            body = self._read_body()
        except RequestTooLargeError as exc:
            self.context.pipeline.telemetry.refused(REFUSED_SIZE, "http")
            return Outcome(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except UnsupportedEncodingError as exc:
            self.close_connection = True
            self.context.pipeline.telemetry.refused(REFUSED_BAD_DATA, "http")
            return Outcome(
                grpc.StatusCode.UNIMPLEMENTED, str(exc), http=HTTPStatus.UNSUPPORTED_MEDIA_TYPE
            )
        except (ValueError, zlib.error, OSError) as exc:
            self.close_connection = True
            self.context.pipeline.telemetry.refused(REFUSED_BAD_DATA, "http")
            return invalid(f"cannot read request body: {exc}")

        if media_type == JSON:
            try:
                body = otlp_json.parse(body, ExportLogsServiceRequest()).SerializeToString()
            except otlp_json.OtlpJsonError as exc:
                self.context.pipeline.telemetry.refused(REFUSED_BAD_DATA, "http")
                return invalid(str(exc))

        return self.context.pipeline.export(body, None, "http")

    def _read_body(self) -> bytes:
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", ""):
            raise UnsupportedEncodingError(
                f"Content-Encoding {encoding!r} is not supported; use gzip or none"
            )
        body = self._read_raw(self.context.max_request_size if encoding != "gzip" else None)
        if encoding == "gzip":
            body = _gunzip(body, self.context.max_request_size)
        return body

    def _read_raw(self, limit: int | None) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked(limit)
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise ValueError("Content-Length or chunked Transfer-Encoding is required")
        length = int(length_header)
        if length < 0:
            raise ValueError("negative Content-Length")
        # A compressed body may legitimately be large; cap it at the same limit.
        if length > (limit or self.context.max_request_size):
            limit_text = self.context.max_request_size
            self._discard_body()
            raise RequestTooLargeError(
                f"request body of {length} bytes exceeds the limit of {limit_text}"
            )
        return self.rfile.read(length)

    def _read_chunked(self, limit: int | None) -> bytes:
        cap = limit or self.context.max_request_size
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
            if size == 0:
                self.rfile.readline(1024)
                return b"".join(parts)
            total += size
            if total > cap:
                raise RequestTooLargeError(
                    f"request body exceeds the limit of {self.context.max_request_size}"
                )
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _discard_body(self) -> None:
        """Read and drop a body that will not be used, so the client can read the answer."""
        length = self.headers.get("Content-Length")
        if not (length and length.isdigit() and int(length) <= _DRAIN_LIMIT):
            self.close_connection = True
            return
        remaining = int(length)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                self.close_connection = True
                return
            remaining -= len(chunk)

    def _reply_outcome(self, outcome: Outcome, media_type: str) -> None:
        if outcome.ok:
            response = ExportLogsServiceResponse.FromString(outcome.response)
            body = (
                otlp_json.dumps(response).encode()
                if media_type == JSON
                else response.SerializeToString()
            )
        else:
            status = outcome.status_proto()
            body = (
                otlp_json.dumps(status).encode()
                if media_type == JSON
                else status.SerializeToString()
            )

        self.send_response(outcome.http_status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        retry_after = outcome.retry_after_header()
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        if outcome.code is grpc.StatusCode.UNAUTHENTICATED:
            self.send_header("WWW-Authenticate", 'Bearer realm="falco-risk"')
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _method_not_allowed(self) -> None:
        self._discard_body()
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "POST")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _reply_text(self, status: HTTPStatus, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _answer_busy(connection: socket.socket, retry_after: float) -> None:
    """Send a 503 without blocking the accept loop; a client not reading loses it."""
    try:
        connection.setblocking(False)
        connection.send(_BUSY_RESPONSE % max(1, round(retry_after)))
    except OSError:
        pass


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip, refusing output beyond ``limit`` bytes before it is produced."""
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise RequestTooLargeError(f"decompressed body exceeds the limit of {limit} bytes")
    out += inflater.flush()
    if len(out) > limit:
        raise RequestTooLargeError(f"decompressed body exceeds the limit of {limit} bytes")
    if not inflater.eof:
        raise ValueError("gzip body is truncated")
    return out
