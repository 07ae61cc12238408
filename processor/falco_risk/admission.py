"""A bound on requests in flight, shared by both receivers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Admission:
    """Admits at most ``limit`` requests at once; refuses the rest instead of queueing them.

    Refusing keeps memory bounded by the limit rather than by the traffic: a
    refused request gets a retryable status and waits in the upstream's queue.
    Once draining starts, every new request is refused.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Condition()
        self._in_flight = 0
        self.draining = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """Yields True when admitted, False when the request must be refused."""
        if self.draining or not self._slots.acquire(blocking=False):
            yield False
            return
        with self._lock:
            self._in_flight += 1
        try:
            yield True
        finally:
            self._slots.release()
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def drain(self, timeout: float) -> bool:
        """Refuse new requests and wait for those in flight; True when all finished."""
        self.draining = True
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout)
