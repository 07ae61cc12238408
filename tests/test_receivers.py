"""Tests for the OTLP/gRPC and OTLP/HTTP receivers' statuses, in a running server."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from falco_risk import otlp_json
from falco_risk.catalog import load_catalog
from falco_risk.config import Config
from falco_risk.server import Server
from otlp_builders import falco_json, request_with

SHELL = falco_json(
    "10:00:00.0: Notice A shell was spawned in a container with an attached terminal",
    **{"user.name": "root", "container.name": "web"},
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(**settings: object) -> Server:
    config = Config(grpc_endpoint="127.0.0.1:0", http_endpoint="127.0.0.1:0", **settings)  # type: ignore[arg-type]
    server = Server(config, load_catalog())
    server.start()
    return server


@pytest.fixture
def console_server() -> Iterator[Server]:
    """A server with the embedded default sink (stdout)."""
    server = start_server(max_request_size=1 << 20)
    yield server
    server.stop()


@pytest.fixture
def unreachable_server() -> Iterator[Server]:
    """A server whose next hop refuses connections."""
    server = start_server(forward_endpoint=f"127.0.0.1:{closed_port()}", forward_timeout=2.0)
    yield server
    server.stop()


def grpc_stub(server: Server) -> tuple[grpc.Channel, LogsServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc.port}")
    return channel, LogsServiceStub(channel)


def post(
    server: Server,
    body: bytes,
    headers: dict[str, str],
    method: str = "POST",
    path: str = "/v1/logs",
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.http.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_grpc_export_prints_the_tagged_request_as_one_json_line(
    console_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a next hop, each accepted request appears on stdout as OTLP JSON."""
    channel, stub = grpc_stub(console_server)

    with channel:
        response = stub.Export(request_with(SHELL, "plain"), timeout=10)

    assert response == ExportLogsServiceResponse()
    (line,) = capsys.readouterr().out.splitlines()
    printed = otlp_json.parse(line, ExportLogsServiceRequest())
    shell_attributes = {
        a.key: a.value.string_value
        for a in printed.resource_logs[0].scope_logs[0].log_records[0].attributes
    }
    assert shell_attributes["risk_score"] == "49"


def test_grpc_empty_request_succeeds(console_server: Server) -> None:
    """An export with no records is a success."""
    channel, stub = grpc_stub(console_server)

    with channel:
        response = stub.Export(ExportLogsServiceRequest(), timeout=10)

    assert response == ExportLogsServiceResponse()


def test_grpc_over_limit_is_resource_exhausted(console_server: Server) -> None:
    """A request over max_request_size is refused by size."""
    channel, stub = grpc_stub(console_server)

    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.Export(request_with("x" * (2 << 20)), timeout=10)

    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_grpc_undecodable_candidate_is_invalid_argument(console_server: Server) -> None:
    """Bytes that are not a request are refused as INVALID_ARGUMENT."""
    channel = grpc.insecure_channel(f"127.0.0.1:{console_server.grpc.port}")
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        request_serializer=None,
        response_deserializer=None,
    )

    with channel, pytest.raises(grpc.RpcError) as caught:
        export(b"\xff\xffA shell was spawned in a container", timeout=10)

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_unreachable_next_hop_is_unavailable_with_retry_info(
    unreachable_server: Server,
) -> None:
    """When the next hop is down the upstream is told to retry, with a delay."""
    channel, stub = grpc_stub(unreachable_server)

    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.Export(request_with(SHELL), timeout=10)

    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.seconds == 1


def test_grpc_health_service_reports_serving(console_server: Server) -> None:
    """The standard health service answers SERVING once started."""
    channel = grpc.insecure_channel(f"127.0.0.1:{console_server.grpc.port}")

    with channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )

    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_http_protobuf_export_succeeds_in_protobuf(console_server: Server) -> None:
    """A protobuf POST gets a protobuf ExportLogsServiceResponse."""
    status, headers, body = post(
        console_server,
        request_with(SHELL).SerializeToString(),
        {"Content-Type": "application/x-protobuf"},
    )

    assert status == 200
    assert headers["Content-Type"] == "application/x-protobuf"
    assert ExportLogsServiceResponse.FromString(body) == ExportLogsServiceResponse()


def test_http_json_gzip_export_is_answered_in_json(
    console_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """A gzip JSON POST is read and answered in JSON; the record is tagged."""
    payload = gzip.compress(otlp_json.dumps(request_with(SHELL)).encode())

    status, headers, body = post(
        console_server,
        payload,
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {}
    assert '"risk_score"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (
            b"\xff\xffA shell was spawned in a container",
            {"Content-Type": "application/x-protobuf"},
            400,
        ),
        (b"{not json", {"Content-Type": "application/json"}, 400),
        (b"{}", {"Content-Type": "text/plain"}, 415),
        (b"x" * (2 << 20), {"Content-Type": "application/x-protobuf"}, 413),
        (
            gzip.compress(b"\0" * (4 << 20)),
            {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
            413,
        ),
        (
            b"\x1f\x8b\x08\x00garbage",
            {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
            400,
        ),
        (b"", {"Content-Type": "application/x-protobuf", "Content-Encoding": "br"}, 415),
    ],
    ids=[
        "bad-protobuf",
        "bad-json",
        "wrong-type",
        "too-large",
        "gzip-bomb",
        "bad-gzip",
        "unknown-encoding",
    ],
)
def test_http_bad_requests_get_their_status(
    console_server: Server, body: bytes, headers: dict[str, str], expected: int
) -> None:
    """Each kind of bad request gets OTLP/HTTP's status for it, with a reason."""
    status, response_headers, response_body = post(console_server, body, headers)

    assert status == expected
    if response_headers["Content-Type"] == "application/json":
        assert json.loads(response_body)["message"]
    elif response_headers["Content-Type"] == "application/x-protobuf":
        assert status_pb2.Status.FromString(response_body).message
    else:
        assert b"Content-Type" in response_body


def test_http_wrong_method_is_405(console_server: Server) -> None:
    """GET on the logs path is not allowed, and says which method is."""
    status, headers, _ = post(console_server, b"", {}, method="GET")

    assert status == 405
    assert headers["Allow"] == "POST"


def test_http_unreachable_next_hop_is_503_with_retry_after(unreachable_server: Server) -> None:
    """The HTTP client is told to retry later, with Retry-After."""
    status, headers, body = post(
        unreachable_server,
        request_with(SHELL).SerializeToString(),
        {"Content-Type": "application/x-protobuf"},
    )

    assert status == 503
    assert headers["Retry-After"] == "1"
    assert status_pb2.Status.FromString(body).code == grpc.StatusCode.UNAVAILABLE.value[0]


def test_http_health_endpoints(console_server: Server) -> None:
    """/healthz and /readyz answer 200 while the server runs."""
    assert post(console_server, b"", {}, method="GET", path="/healthz")[0] == 200
    assert post(console_server, b"", {}, method="GET", path="/readyz")[0] == 200


def test_grpc_retry_info_also_travels_in_the_trailer_python_exporters_read(
    unreachable_server: Server,
) -> None:
    """RetryInfo is sent in google.rpc.retryinfo-bin as well as in the status details."""
    channel, stub = grpc_stub(unreachable_server)

    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.Export(request_with(SHELL), timeout=10)

    trailers = dict(caught.value.trailing_metadata())  # type: ignore[attr-defined]
    info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert info.retry_delay.seconds == 1
