"""Real peers for reliability tests: a capture next hop, falco-risk and rotel-agent as processes."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from pathlib import Path

import grpc
import yaml
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from falco_risk.otlp_values import kvlist_to_dict

SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
EXPORT = f"/{SERVICE}/Export"
ID_KEY = "test.id"
ROTEL_AGENT = Path(__import__("rotel").__file__).parent / "rotel-agent"
_EMPTY = ExportLogsServiceResponse().SerializeToString()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def record_ids(request: ExportLogsServiceRequest) -> list[tuple[str, LogRecord]]:
    """The test id of every record in a request, with the record."""
    found = []
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                value = kvlist_to_dict(record.attributes).get(ID_KEY)
                found.append((str(value), record))
    return found


class Ledger:
    """What a capture received, by record id; survives the capture's restarts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.records: dict[str, LogRecord] = {}
        self.metadata: list[dict[str, str]] = []
        # The deadline each call arrived with, and the most calls open at once.
        self.deadlines: list[float] = []
        self.open_calls = 0
        self.max_open_calls = 0

    def call_started(self, deadline: float | None) -> None:
        with self._lock:
            if deadline is not None:
                self.deadlines.append(deadline)
            self.open_calls += 1
            self.max_open_calls = max(self.max_open_calls, self.open_calls)

    def call_ended(self) -> None:
        with self._lock:
            self.open_calls -= 1

    def add(self, request: ExportLogsServiceRequest, metadata: Mapping[str, str]) -> None:
        with self._lock:
            self.metadata.append(dict(metadata))
            for record_id, record in record_ids(request):
                self.counts[record_id] += 1
                self.records[record_id] = record

    def has_all(self, ids: Iterable[str]) -> bool:
        with self._lock:
            return all(self.counts[i] for i in ids)


class CaptureServer:
    """An OTLP/gRPC next hop that records what it accepts; optionally slow, TLS or token-guarded."""

    def __init__(
        self,
        port: int = 0,
        ledger: Ledger | None = None,
        delay: float = 0.0,
        credentials: grpc.ServerCredentials | None = None,
        token: str = "",
    ) -> None:
        self.ledger = ledger or Ledger()
        self.delay = delay
        self._token = token
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=32),
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 64 << 20)],
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export)}
        )
        self._server.add_generic_rpc_handlers((handler,))
        address = f"127.0.0.1:{port}"
        if credentials is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, credentials)
        assert self.port, f"cannot listen on {address}"
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        if self._token and metadata.get("authorization") != f"Bearer {self._token}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        self.ledger.call_started(context.time_remaining())
        try:
            if self.delay:
                # A slow next hop: a caller whose deadline passes first has
                # given up, and its records are not kept.
                time.sleep(self.delay)
                if not context.is_active():
                    return _EMPTY
            try:
                decoded = ExportLogsServiceRequest.FromString(request)
            except DecodeError:
                # What grpc-go servers, the collector's among them, answer.
                context.abort(grpc.StatusCode.INTERNAL, "grpc: error unmarshalling request")
            self.ledger.add(decoded, metadata)
        finally:
            self.ledger.call_ended()
        return _EMPTY

    def stop(self) -> None:
        """Stop at once: calls in progress are cancelled, as when the process dies."""
        self._server.stop(0).wait(5)


class FalcoRisk:
    """``falco-risk serve`` as a child process with its own configuration file."""

    def __init__(self, workdir: Path, **settings: object) -> None:
        self.grpc_port = int(str(settings.pop("grpc_port", 0))) or free_port()
        self.http_port = int(str(settings.pop("http_port", 0))) or free_port()
        self.settings = {
            "grpc_endpoint": f"127.0.0.1:{self.grpc_port}",
            "http_endpoint": f"127.0.0.1:{self.http_port}",
            "log_format": "json",
            **settings,
        }
        self.config_file = workdir / f"falco-risk-{self.grpc_port}.yaml"
        self.config_file.write_text(yaml.safe_dump(self.settings))
        self.log_file = workdir / f"falco-risk-{self.grpc_port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, env: Mapping[str, str] | None = None) -> FalcoRisk:
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "falco_risk", "serve", "--config", str(self.config_file)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, **(env or {})},
            )
        wait_until(self._ready, 20, f"falco-risk to serve (log: {self.log_file})")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"falco-risk exited: {self.log_file.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=1) as sock:
                if self.settings.get("tls_cert_file"):
                    return True
                sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def memory_kib(self) -> tuple[int, int]:
        """Resident memory now and at its peak (VmRSS, VmHWM), in KiB."""
        assert self.proc is not None
        fields = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
            if ":" in line
        )
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


class RotelAgent:
    """rotel-agent receiving OTLP/gRPC and exporting, with retries, to ``target``."""

    def __init__(self, workdir: Path, target: str) -> None:
        self.port = free_port()
        self.http_port = free_port()
        self.log_file = workdir / f"rotel-{self.port}.log"
        self._args = [
            str(ROTEL_AGENT),
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{self.port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{self.http_port}",
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            f"http://{target}",
            "--otlp-exporter-retry-initial-backoff",
            "100ms",
            "--otlp-exporter-retry-max-backoff",
            "1s",
            "--otlp-exporter-retry-max-elapsed-time",
            "120s",
            "--otlp-exporter-request-timeout",
            "5s",
            "--logs-batch-timeout",
            "50ms",
            "--pid-file",
            str(workdir / f"rotel-{self.port}.pid"),
            "--log-file",
            str(self.log_file),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RotelAgent:
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                self._args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_until(self._listening, 20, "rotel-agent to listen")
        return self

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def https_post(
    port: int,
    body: bytes,
    headers: Mapping[str, str],
    context: ssl.SSLContext | None = None,
    path: str = "/v1/logs",
) -> tuple[int, dict[str, str], bytes]:
    """POST to the HTTP receiver, over TLS when ``context`` is given."""
    if context is None:
        connection: http.client.HTTPConnection = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=10
        )
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        connection.request("POST", path, body=body, headers=dict(headers))
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()
