"""Fault scenarios with real peers: next hop and falco-risk restarts, SIGTERM, a slow next hop.

Every record carries a unique id; a scenario counts what was sent and what
reached the capture, and reports sent / delivered / duplicates / lost.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from reliability.peers import (
    CaptureServer,
    FalcoRisk,
    Ledger,
    RotelAgent,
    free_port,
    https_post,
    wait_until,
)
from reliability.records import Figures, batch
from reliability.upstreams import ExporterStream, RetryingSender, run_stream

pytestmark = pytest.mark.timeout(180)

DELIVERY_SECONDS = 90
RETRYABLE_SEEN = {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    server = CaptureServer()
    yield server
    server.stop()


def delivered(ledger: Ledger, ids: list[str], what: str) -> None:
    wait_until(lambda: ledger.has_all(ids), DELIVERY_SECONDS, what)


def test_next_hop_killed_and_restarted_loses_nothing(tmp_path: Path) -> None:
    """While the next hop is down the upstream hears only retryable statuses; all records arrive."""
    ledger = Ledger()
    capture = CaptureServer(ledger=ledger)
    port = capture.port
    falco_risk = FalcoRisk(
        tmp_path, forward_endpoint=capture.endpoint, forward_timeout=2.0, retry_after=0.2
    ).start()
    rotel = RotelAgent(tmp_path, falco_risk.grpc_endpoint).start()
    direct = RetryingSender(falco_risk.grpc_endpoint)
    through_rotel = RetryingSender(rotel.endpoint)
    give_up = time.monotonic() + DELIVERY_SECONDS

    try:
        streams = [
            run_stream("direct", 60, 10, lambda r, i: direct.send(r, i, give_up)),
            run_stream("rotel", 60, 10, lambda r, i: through_rotel.send(r, i, give_up)),
        ]
        wait_until(lambda: len(ledger.counts) >= 200, 30, "the first records to arrive")
        capture.stop()
        time.sleep(1.5)
        capture = CaptureServer(port=port, ledger=ledger)
        for thread, _ in streams:
            thread.join(DELIVERY_SECONDS)
        sent = [i for _, ids in streams for i in ids]
        delivered(ledger, sent, "every record after the next hop came back")
        peak = falco_risk.memory_kib()[1]
    finally:
        for peer in (direct, through_rotel):
            peer.close()
        rotel.stop()
        falco_risk.stop()
        capture.stop()

    figures = Figures.count("next hop killed and restarted", sent, ledger.counts, peak)
    figures.note = f"upstream statuses { {c.name: n for c, n in direct.statuses.items()} }"
    figures.report()
    assert figures.lost == 0
    assert set(direct.statuses) <= RETRYABLE_SEEN
    assert direct.statuses[grpc.StatusCode.UNAVAILABLE] > 0


def test_falco_risk_sigkilled_and_restarted_loses_nothing(
    tmp_path: Path, capture: CaptureServer
) -> None:
    """SIGKILL mid-stream, then a restart: retrying upstreams resend and nothing is lost.

    The upstreams are the OpenTelemetry Python exporter and a sender that
    retries as the collector's exporter does. rotel-agent is left out here:
    it drops a batch whose connection breaks mid-request (see
    docs/reliability.md).
    """
    settings = {"forward_endpoint": capture.endpoint, "grpc_port": free_port()}
    falco_risk = FalcoRisk(tmp_path, **settings).start()
    direct = RetryingSender(falco_risk.grpc_endpoint)
    exporter = ExporterStream(falco_risk.grpc_endpoint, timeout=30)
    give_up = time.monotonic() + DELIVERY_SECONDS

    try:
        streams = [
            run_stream("direct", 60, 10, lambda r, i: direct.send(r, i, give_up)),
            run_stream("exporter", 60, 10, exporter.send),
        ]
        wait_until(lambda: len(capture.ledger.counts) >= 200, 30, "the first records to arrive")
        falco_risk.kill()
        time.sleep(0.5)
        falco_risk.start()
        for thread, _ in streams:
            thread.join(DELIVERY_SECONDS)
        sent = [i for _, ids in streams for i in ids]
        delivered(capture.ledger, sent, "every record after falco-risk restarted")
        peak = falco_risk.memory_kib()[1]
    finally:
        direct.close()
        exporter.close()
        falco_risk.stop()

    figures = Figures.count("falco-risk SIGKILLed and restarted", sent, capture.ledger.counts, peak)
    figures.report()
    assert figures.lost == 0
    assert exporter.failed == []
    assert set(direct.statuses) <= RETRYABLE_SEEN


def test_sigterm_finishes_in_flight_refuses_new_and_exits_zero(tmp_path: Path) -> None:
    """On SIGTERM requests in flight complete, new ones get UNAVAILABLE, and the exit code is 0."""
    capture = CaptureServer(delay=1.5)
    falco_risk = FalcoRisk(tmp_path, forward_endpoint=capture.endpoint, forward_timeout=10.0)
    falco_risk.start()
    channel = grpc.insecure_channel(falco_risk.grpc_endpoint)
    stub = LogsServiceStub(channel)
    planned = [batch("drain", n, 5) for n in range(4)]
    in_flight = [stub.Export.future(request, timeout=20) for request, _ in planned]
    wait_until(lambda: capture.ledger.open_calls == len(planned), 10, "calls at the next hop")

    try:
        falco_risk.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        wait_until(lambda: "stopping" in falco_risk.log(), 10, "the drain to begin")
        late, late_ids = batch("late", 0, 5)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Export(late, timeout=5)
        exit_code = falco_risk.proc.wait(30)  # type: ignore[union-attr]
        results = [call.exception() for call in in_flight]
    finally:
        channel.close()
        falco_risk.stop()
        capture.stop()

    sent = [i for _, ids in planned for i in ids]
    Figures.count("SIGTERM drain", sent, capture.ledger.counts, 0).report()
    assert results == [None] * len(planned)
    assert capture.ledger.has_all(sent)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    assert not any(capture.ledger.counts[i] for i in late_ids)
    assert exit_code == 0


def test_slow_next_hop_bounds_calls_and_propagates_deadlines(tmp_path: Path) -> None:
    """A next hop slower than the upstream's deadline: the deadline travels, calls stay bounded."""
    capture = CaptureServer(delay=3.0)
    falco_risk = FalcoRisk(
        tmp_path,
        forward_endpoint=capture.endpoint,
        forward_timeout=10.0,
        max_in_flight=4,
        retry_after=0.2,
    ).start()
    sender = RetryingSender(falco_risk.grpc_endpoint, deadline=1.0)
    planned = [batch("slow", n, 5) for n in range(24)]
    outcomes: list[bool] = []

    def send_once(request: object, ids: list[str]) -> None:
        outcomes.append(sender.send(request, ids, give_up=time.monotonic()))  # type: ignore[arg-type]

    try:
        threads = [
            threading.Thread(target=send_once, args=planned[n], daemon=True) for n in range(24)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        slow_phase_open = capture.ledger.max_open_calls
        slow_deadlines = list(capture.ledger.deadlines)
        capture.delay = 0.0
        give_up = time.monotonic() + DELIVERY_SECONDS
        for request, ids in planned:
            sender.send(request, ids, give_up)
        sent = [i for _, ids in planned for i in ids]
        delivered(capture.ledger, sent, "every record once the next hop is fast again")
        peak = falco_risk.memory_kib()[1]
    finally:
        sender.close()
        falco_risk.stop()
        capture.stop()

    figures = Figures.count("slow next hop, then recovered", sent, capture.ledger.counts, peak)
    figures.note = f"max calls open at the next hop while slow: {slow_phase_open}"
    figures.report()
    assert not any(outcomes)
    assert 0 < slow_phase_open <= 4
    # grpc-timeout is sent rounded up, so allow a margin; forward_timeout is 10.
    assert max(slow_deadlines) < 1.5
    assert set(sender.statuses) <= {*RETRYABLE_SEEN, grpc.StatusCode.DEADLINE_EXCEEDED}
    assert set(sender.acknowledged) == set(sent)
    assert figures.lost == 0


def test_http_forward_is_bounded_by_forward_timeout(tmp_path: Path) -> None:
    """OTLP/HTTP carries no deadline: the next hop gets forward_timeout, the client a 503."""
    capture = CaptureServer(delay=2.0)
    falco_risk = FalcoRisk(tmp_path, forward_endpoint=capture.endpoint, forward_timeout=0.5)
    falco_risk.start()
    request, ids = batch("http-slow", 0, 4)

    try:
        status, headers, _ = https_post(
            falco_risk.http_port,
            request.SerializeToString(),
            {"Content-Type": "application/x-protobuf"},
        )
        deadlines = list(capture.ledger.deadlines)
    finally:
        falco_risk.stop()
        capture.stop()

    assert status == 503
    assert int(headers["Retry-After"]) >= 1
    assert deadlines
    assert max(deadlines) < 1.0
    assert not any(capture.ledger.counts[i] for i in ids)
