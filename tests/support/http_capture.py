"""An in-process OTLP/HTTP logs receiver (POST /v1/logs) that records what it is sent."""

import gzip
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import grpc
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from support.capture import Metadata, Recorder, Reply, response
from support.ports import LOOPBACK

LOGS_PATH = "/v1/logs"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# The OTLP/HTTP specification's mapping of failures to HTTP statuses.
HTTP_STATUS_BY_CODE = {
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
}


def http_status(reply: Reply) -> int:
    """The HTTP status that stands for `reply`."""
    if reply.http_status is not None:
        return reply.http_status
    if reply.accepted:
        return HTTPStatus.OK
    return HTTP_STATUS_BY_CODE.get(reply.code, HTTPStatus.INTERNAL_SERVER_ERROR)


class HttpCaptureServer(Recorder):
    """A stdlib HTTP server on loopback accepting OTLP logs, protobuf or JSON, gzip or not."""

    def __init__(self, port: int = 0, host: str = LOOPBACK) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def endpoint(self) -> str:
        """host:port to send to."""
        return f"{self.host}:{self.port}"

    @property
    def logs_url(self) -> str:
        """The full URL of the logs path."""
        return f"http://{self.endpoint}{LOGS_PATH}"

    def start(self) -> None:
        """Listen, on the same port as before if this server ran already."""
        if self._server is not None:
            raise RuntimeError(f"capture server on {self.endpoint} runs already")
        self._stopping = threading.Event()
        server = ThreadingHTTPServer((self.host, self.port), _handler(self, self._stopping))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="http-capture")
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; requests still waiting on a delay end at once."""
        if self._server is None or self._thread is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
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


def decode(body: bytes, headers: Metadata) -> ExportLogsServiceRequest:
    """Parse an OTLP/HTTP logs body according to its encoding and content type."""
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    request = ExportLogsServiceRequest()
    if str(headers.get("content-type", "")).startswith(JSON):
        json_format.Parse(body, request)
    else:
        request.ParseFromString(body)
    return request


def _handler(recorder: Recorder, stopping: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keeps the client's connection open between requests.
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != LOGS_PATH:
                self._send(HTTPStatus.NOT_FOUND, b"", "text/plain")
                return
            headers: Metadata = {k.lower(): v for k, v in self.headers.items()}
            try:
                request = decode(body, headers)
            except Exception as error:  # a capture must answer, never die
                status = Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message=str(error))
                self._send(HTTPStatus.BAD_REQUEST, status.SerializeToString(), PROTOBUF)
                return

            reply = recorder.record(request, headers)
            if reply.delay_s:
                stopping.wait(reply.delay_s)
            self._answer(reply, json=str(headers.get("content-type", "")).startswith(JSON))

        def _answer(self, reply: Reply, json: bool) -> None:
            if reply.accepted:
                message = response(reply)
            else:
                message = Status(code=reply.code.value[0], message=reply.message)
            if json:
                body, content_type = json_format.MessageToJson(message).encode(), JSON
            else:
                body, content_type = message.SerializeToString(), PROTOBUF
            self._send(http_status(reply), body, content_type, reply)

        def _send(
            self, status: int, body: bytes, content_type: str, reply: Reply | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if reply is not None and reply.retry_delay_s is not None:
                self.send_header("Retry-After", str(max(1, round(reply.retry_delay_s))))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # One line per request on stderr would drown the test output.
            pass

    return Handler
