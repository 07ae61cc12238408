"""Overload: a flood against a slow next hop stays within the in-flight bound and bounded memory."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from reliability.peers import EXPORT, CaptureServer, FalcoRisk, https_post
from reliability.records import Figures, batch

pytestmark = pytest.mark.timeout(240)

MAX_IN_FLIGHT = 8
PAYLOAD_RECORDS = 64
# Each record body is padded so a request weighs about 256 KiB.
PADDING = "x" * 4000


@pytest.fixture
def flooded(tmp_path: Path) -> Iterator[tuple[FalcoRisk, CaptureServer]]:
    """falco-risk with a small in-flight bound in front of a next hop that takes 2 s per call."""
    capture = CaptureServer(delay=2.0)
    falco_risk = FalcoRisk(
        tmp_path,
        forward_endpoint=capture.endpoint,
        forward_timeout=5.0,
        max_in_flight=MAX_IN_FLIGHT,
    ).start()
    yield falco_risk, capture
    falco_risk.stop()
    capture.stop()


def padded_request(prefix: str) -> tuple[bytes, list[str]]:
    request, ids = batch(prefix, 0, PAYLOAD_RECORDS)
    for record in request.resource_logs[0].scope_logs[0].log_records:
        record.attributes.add(key="padding").value.string_value = PADDING
    return request.SerializeToString(), ids


def grpc_wave(endpoint: str, payload: bytes, calls: int) -> Counter[str]:
    """Start ``calls`` exports at once and count the answers by kind.

    Kinds: OK, UNAVAILABLE+RetryInfo (falco-risk's refusal), UNAVAILABLE
    stream-refused (HTTP/2 REFUSED_STREAM for streams a client opens past the
    connection's stream limit before it has read that limit), or another code.
    """
    channels = [grpc.insecure_channel(endpoint) for _ in range(4)]
    exports = [channel.unary_unary(EXPORT) for channel in channels]
    pending = [exports[n % 4].future(payload, timeout=30) for n in range(calls)]
    codes: Counter[str] = Counter()
    for call in pending:
        codes[_kind(call.exception())] += 1
    for channel in channels:
        channel.close()
    return codes


def _kind(error: grpc.RpcError | None) -> str:
    if error is None:
        return "OK"
    code = error.code().name
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is not None and any(
        detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for detail in status.details
    ):
        return f"{code}+RetryInfo"
    if "RST_STREAM" in (error.details() or ""):
        return f"{code} stream-refused"
    return code


def test_grpc_flood_is_refused_with_retry_info_and_memory_stays_bounded(
    flooded: tuple[FalcoRisk, CaptureServer],
) -> None:
    """Calls past max_in_flight get UNAVAILABLE + RetryInfo; a 4x flood does not grow memory."""
    falco_risk, capture = flooded
    payload, _ = padded_request("flood")
    health = grpc.insecure_channel(falco_risk.grpc_endpoint)

    first = grpc_wave(falco_risk.grpc_endpoint, payload, 500)
    after_first = falco_risk.memory_kib()[1]
    second_result: list[Counter[str]] = []
    flood = threading.Thread(
        target=lambda: second_result.append(grpc_wave(falco_risk.grpc_endpoint, payload, 2000))
    )
    flood.start()
    serving = health_pb2_grpc.HealthStub(health).Check(health_pb2.HealthCheckRequest(), timeout=10)
    flood.join(120)
    second = second_result[0]
    after_second = falco_risk.memory_kib()[1]
    health.close()

    for name, codes, peak in (("500", first, after_first), ("2000", second, after_second)):
        sent = sum(codes.values())
        Figures(
            f"gRPC flood of {name} x 256 KiB, max_in_flight {MAX_IN_FLIGHT}",
            sent,
            codes["OK"],
            0,
            0,
            peak,
            note=f"statuses {dict(codes)}",
        ).report()
    assert set(first) | set(second) <= {
        "OK",
        "UNAVAILABLE+RetryInfo",
        "UNAVAILABLE stream-refused",
    }
    assert first["UNAVAILABLE+RetryInfo"] > 0
    assert second["UNAVAILABLE+RetryInfo"] > 0
    assert capture.ledger.max_open_calls <= MAX_IN_FLIGHT
    assert serving.status == health_pb2.HealthCheckResponse.SERVING
    assert after_second < after_first * 1.5


def test_http_flood_is_refused_with_retry_after_and_memory_stays_bounded(
    flooded: tuple[FalcoRisk, CaptureServer],
) -> None:
    """Past max_in_flight POSTs get 503 + Retry-After; a 4x larger flood does not grow memory."""
    falco_risk, capture = flooded
    payload, _ = padded_request("http-flood")
    headers = {"Content-Type": "application/x-protobuf"}

    def wave(posts: int) -> tuple[Counter[str], int]:
        answers: Counter[str] = Counter()
        lock = threading.Lock()

        def post() -> None:
            try:
                status, response_headers, _ = https_post(falco_risk.http_port, payload, headers)
                key = str(status) + ("+Retry-After" if "Retry-After" in response_headers else "")
            except OSError as exc:
                key = type(exc).__name__
            with lock:
                answers[key] += 1

        threads = [threading.Thread(target=post) for _ in range(posts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        return answers, falco_risk.memory_kib()[1]

    first, after_first = wave(100)
    second, after_second = wave(400)

    for codes, peak in ((first, after_first), (second, after_second)):
        Figures(
            f"HTTP flood of {sum(codes.values())} x 256 KiB, max_in_flight {MAX_IN_FLIGHT}",
            sum(codes.values()),
            codes["200"],
            0,
            0,
            peak,
            note=f"answers {dict(codes)}",
        ).report()
    assert set(first) | set(second) <= {"200", "503+Retry-After"}
    assert first["503+Retry-After"] > 0
    assert capture.ledger.max_open_calls <= MAX_IN_FLIGHT
    assert after_second < after_first * 1.5
