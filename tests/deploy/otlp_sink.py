"""An OTLP/HTTP logs endpoint on loopback that records what a collector sends to it."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)


@dataclass
class Sink:
    """What arrived, and how many requests to refuse before accepting."""

    refuse_first: int = 0
    requests: list[dict[str, str]] = field(default_factory=list)
    accepted: list[ExportLogsServiceRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def endpoint(self) -> str:
        """host:port of the sink."""
        return f"127.0.0.1:{self.port}"

    def bodies(self) -> list[str]:
        """Return the string bodies of every accepted log record."""
        return [
            record.body.string_value
            for request in self.accepted
            for resource_logs in request.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]

    def resources(self) -> list[dict[str, str]]:
        """Return the string attributes of every accepted resource."""
        return [
            {a.key: a.value.string_value for a in resource_logs.resource.attributes}
            for request in self.accepted
            for resource_logs in request.resource_logs
        ]


def _handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with sink.lock:
                sink.requests.append(dict(self.headers.items()))
                refuse = len(sink.requests) <= sink.refuse_first

            if refuse or self.path != "/v1/logs":
                self._answer(503 if refuse else 404, b"", {"Retry-After": "1"})
                return

            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportLogsServiceRequest.FromString(body)
            with sink.lock:
                sink.accepted.append(request)
            sink.arrived.set()
            self._answer(200, ExportLogsServiceResponse().SerializeToString(), {})

        def _answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output quiet."""

    return Handler


@contextmanager
def running_sink(refuse_first: int = 0) -> Iterator[Sink]:
    """Serve a sink on a free loopback port for the duration of the block."""
    sink = Sink(refuse_first=refuse_first)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(sink))
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
