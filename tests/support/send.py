"""Send OTLP logs the way real clients do: the reference Python exporter, a raw stub, a POST."""

import gzip
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import grpc
from google.protobuf import json_format
from opentelemetry._logs import LogRecord as ApiLogRecord
from opentelemetry.exporter.otlp.proto.grpc import _log_exporter as grpc_exporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http import _log_exporter as http_exporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from support.alerts import CONTAINER_LINE_ATTRIBUTES, FIXED_TIME, falco_resource, unix_nanos

SEND_TIMEOUT_S = 5.0
SdkAttributes = Mapping[str, str | bool | int | float]


def sdk_records(
    bodies: Iterable[str],
    *,
    resource: SdkAttributes | None = None,
    attributes: SdkAttributes | None = None,
    scope: str = "",
) -> list[ReadableLogRecord]:
    """Log records for the Python exporter, under the Falco pod's resource by default."""
    resource = resource or {k: v for k, v in falco_resource().items() if isinstance(v, str)}
    attributes = attributes or {k: str(v) for k, v in CONTAINER_LINE_ATTRIBUTES.items()}
    return [
        ReadableLogRecord(
            ApiLogRecord(timestamp=unix_nanos(FIXED_TIME), body=body, attributes=dict(attributes)),
            Resource(dict(resource)),
            InstrumentationScope(scope),
        )
        for body in bodies
    ]


def export_with_sdk(
    target: str,
    records: Sequence[ReadableLogRecord],
    *,
    protocol: Literal["grpc", "http"] = "grpc",
    timeout: float = SEND_TIMEOUT_S,
    gzip_body: bool = False,
) -> bool:
    """Export once with the reference OTLP exporter (its retries included); True on success.

    The gRPC exporter retries CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
    ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS up to 6 times within
    `timeout`, backing off 1, 2, 4... seconds; it takes a server's delay only
    from a "google.rpc.retryinfo-bin" trailer, not from grpc-status-details-bin.

    Args:
        target: host:port for grpc, the full logs URL for http.
    """
    exporter: grpc_exporter.OTLPLogExporter | http_exporter.OTLPLogExporter
    if protocol == "grpc":
        compression = grpc.Compression.Gzip if gzip_body else grpc.Compression.NoCompression
        exporter = grpc_exporter.OTLPLogExporter(
            endpoint=target, insecure=True, timeout=timeout, compression=compression
        )
    else:
        http_compression = HttpCompression.Gzip if gzip_body else HttpCompression.NoCompression
        exporter = http_exporter.OTLPLogExporter(
            endpoint=target, timeout=timeout, compression=http_compression
        )
    try:
        return exporter.export(records) == LogRecordExportResult.SUCCESS
    finally:
        exporter.shutdown()


def export_grpc(
    endpoint: str,
    request: ExportLogsServiceRequest,
    *,
    timeout: float = SEND_TIMEOUT_S,
    gzip_body: bool = False,
    metadata: Sequence[tuple[str, str]] = (),
) -> ExportLogsServiceResponse:
    """One raw LogsService/Export call, no retry; raises grpc.RpcError on failure."""
    compression = grpc.Compression.Gzip if gzip_body else grpc.Compression.NoCompression
    with grpc.insecure_channel(endpoint) as channel:
        stub = LogsServiceStub(channel)  # type: ignore[no-untyped-call]
        answer: ExportLogsServiceResponse = stub.Export(
            request,
            timeout=timeout,
            metadata=tuple(metadata),
            compression=compression,
            wait_for_ready=False,
        )
        return answer


@dataclass(frozen=True)
class HttpAnswer:
    """What an OTLP/HTTP server answered."""

    status: int
    headers: dict[str, str]
    body: bytes


def post_logs(
    url: str,
    request: ExportLogsServiceRequest,
    *,
    timeout: float = SEND_TIMEOUT_S,
    gzip_body: bool = False,
    json_body: bool = False,
) -> HttpAnswer:
    """One raw OTLP/HTTP POST, protobuf or JSON, no retry; error statuses are returned."""
    if json_body:
        body, content_type = json_format.MessageToJson(request).encode(), "application/json"
    else:
        body, content_type = request.SerializeToString(), "application/x-protobuf"
    return post(url, body, content_type=content_type, timeout=timeout, gzip_body=gzip_body)


def post(
    url: str,
    body: bytes,
    *,
    content_type: str,
    timeout: float = SEND_TIMEOUT_S,
    gzip_body: bool = False,
) -> HttpAnswer:
    """POST any bytes, e.g. a malformed body; error statuses are returned, not raised."""
    headers = {"Content-Type": content_type}
    if gzip_body:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return HttpAnswer(answer.status, _lower(answer.headers.items()), answer.read())
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, _lower(error.headers.items()), error.read())


def _lower(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {key.lower(): value for key, value in pairs}
