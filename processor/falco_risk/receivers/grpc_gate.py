"""Route each OTLP/gRPC call, as it arrives, to a free worker or to a quick refusal.

gRPC's synchronous server hands every call to its thread pool, and calls
beyond the pool wait in the pool's queue while gRPC keeps receiving their
messages, so a flood grows memory with the number of callers. Here the
choice is made when a call arrives: while fewer calls are queued or running
than the gate's capacity, the call goes to the worker pool; past it the call
is answered UNAVAILABLE with RetryInfo by a small pool of its own, without
its message being read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import grpc

P = ParamSpec("P")
T = TypeVar("T")

# Refusals take microseconds; two threads keep up with any flood the
# machine can receive.
REFUSAL_WORKERS = 2

if TYPE_CHECKING:
    _Handler = grpc.GenericRpcHandler[bytes, bytes]
    _MethodHandler = grpc.RpcMethodHandler[bytes, bytes]
else:
    _Handler = grpc.GenericRpcHandler


class CountingExecutor(futures.ThreadPoolExecutor):
    """A thread pool that knows how many of its tasks are queued or running."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._count_lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> futures.Future[T]:
        with self._count_lock:
            self._pending += 1
        try:
            return super().submit(self._run, fn, *args, **kwargs)
        except BaseException:
            self._done()
            raise

    def _run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            self._done()

    def _done(self) -> None:
        with self._count_lock:
            self._pending -= 1


class _Refusal:
    """A client-streaming behaviour that answers without reading the request.

    Declaring the refusal client-streaming is what spares reading the message:
    gRPC hands a streaming behaviour an iterator instead of the received
    request, and the wire format of one message is the same either way.
    ``experimental_thread_pool`` is how gRPC lets one method run on a pool
    of its own.
    """

    def __init__(self, refuse: Callable[[grpc.ServicerContext], None]) -> None:
        self._refuse = refuse
        self.experimental_thread_pool = CountingExecutor(REFUSAL_WORKERS, "grpc-refuse")

    def __call__(self, requests: object, context: grpc.ServicerContext) -> bytes:
        self._refuse(context)
        raise AssertionError("the refusal did not abort the call")  # pragma: no cover


class GatedMethod(_Handler):
    """Serves one unary method on ``pool`` while it has room, and refuses the rest."""

    def __init__(
        self,
        method: str,
        behaviour: Callable[[bytes, grpc.ServicerContext], bytes],
        refuse: Callable[[grpc.ServicerContext], None],
        pool: CountingExecutor,
        capacity: int,
    ) -> None:
        self._method = method
        self._pool = pool
        self._capacity = capacity
        self._refusal = _Refusal(refuse)
        # No deserializer: the behaviour receives the request bytes untouched.
        self._served = grpc.unary_unary_rpc_method_handler(behaviour)
        self._refused = grpc.stream_unary_rpc_method_handler(self._refusal)

    @property
    def refusals_pending(self) -> int:
        return self._refusal.experimental_thread_pool.pending

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> _MethodHandler | None:
        if handler_call_details.method != self._method:
            return None
        if self._pool.pending < self._capacity:
            return self._served
        return self._refused

    def shutdown(self) -> None:
        self._refusal.experimental_thread_pool.shutdown(wait=False)
