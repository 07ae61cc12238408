"""Tests for routing gRPC calls to the worker pool or to a quick refusal."""

import threading

import grpc

from falco_risk.receivers.grpc_gate import CountingExecutor, GatedMethod

METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


class Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def test_counting_executor_counts_queued_and_running_tasks() -> None:
    """pending covers tasks waiting and running, and returns to zero when they finish."""
    pool = CountingExecutor(1)
    release = threading.Event()

    first = pool.submit(release.wait, 10)
    second = pool.submit(lambda: None)
    during = pool.pending
    release.set()
    first.result(10)
    second.result(10)

    assert during == 2
    assert pool.pending == 0
    pool.shutdown()


def test_gate_refuses_once_the_pool_is_at_capacity() -> None:
    """Calls get the served handler while the pool has room, the refusing one after."""
    pool = CountingExecutor(2)
    release = threading.Event()
    gate = GatedMethod(METHOD, lambda request, context: b"", lambda context: None, pool, 1)

    open_handler = gate.service(Details(METHOD))
    busy = pool.submit(release.wait, 10)
    full_handler = gate.service(Details(METHOD))
    release.set()
    busy.result(10)

    assert open_handler is not None
    assert not open_handler.request_streaming
    assert full_handler is not None
    assert full_handler.request_streaming
    assert gate.service(Details("/other.Service/Call")) is None
    gate.shutdown()
    pool.shutdown()
