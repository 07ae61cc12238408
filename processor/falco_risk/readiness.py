"""What ``/readyz`` answers: started, catalog loaded, not draining, next hop reachable.

The next hop is judged by the forwarder's own gRPC channel, so the probe says
what a request would meet: READY is reachable, TRANSIENT_FAILURE is not, and an
idle channel is asked to connect and given a short while to do so. The answer
is kept for a second, so frequent probes cost nothing; connection attempts to a
next hop that is down follow the channel's own reconnect back-off, however
often the probe asks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import grpc

from falco_risk.admission import Admission

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 0.5
PROBE_CACHE_SECONDS = 1.0


class NextHopProbe:
    """Whether a gRPC channel to the next hop is connected, or connects quickly."""

    def __init__(
        self,
        channel: grpc.Channel,
        endpoint: str,
        timeout: float = PROBE_TIMEOUT_SECONDS,
        cache: float = PROBE_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self._channel = channel
        self._timeout = timeout
        self._cache = cache
        self._clock = clock
        self._lock = threading.Lock()
        self._state: grpc.ChannelConnectivity | None = None
        self._answer = False
        self._expires = float("-inf")
        # Asking to connect now makes the first probe after start-up meaningful.
        channel.subscribe(self._on_change, try_to_connect=True)

    def reachable(self) -> bool:
        """True when the channel is READY or becomes so within the probe timeout."""
        with self._lock:
            now = self._clock()
            if now >= self._expires:
                self._answer = self._probe()
                self._expires = now + self._cache
            return self._answer

    def close(self) -> None:
        """Stop watching the channel."""
        self._channel.unsubscribe(self._on_change)

    def _on_change(self, state: grpc.ChannelConnectivity) -> None:
        self._state = state

    def _probe(self) -> bool:
        if self._state is grpc.ChannelConnectivity.READY:
            return True
        # A failed channel answers at once; still ask it to try again, so that
        # recovery is noticed as soon as its back-off allows.
        failed = self._state is grpc.ChannelConnectivity.TRANSIENT_FAILURE
        future = grpc.channel_ready_future(self._channel)
        try:
            future.result(timeout=0 if failed else self._timeout)
        except grpc.FutureTimeoutError:
            return False
        finally:
            future.cancel()
        return True


class Readiness:
    """Combines what must hold for falco-risk to take traffic; logs each change."""

    def __init__(self, admission: Admission, next_hop: NextHopProbe | None = None) -> None:
        self._admission = admission
        self._next_hop = next_hop
        self._started = False
        self._last_reason: str | None = ""

    def started(self) -> None:
        """The catalog is loaded and both receivers listen."""
        self._started = True

    def __call__(self) -> bool:
        """True when a request arriving now would be accepted and forwarded."""
        reason = self.reason()
        if reason != self._last_reason:
            self._log_change(reason)
            self._last_reason = reason
        return reason is None

    def reason(self) -> str | None:
        """Why falco-risk is not ready, or None when it is."""
        if not self._started:
            return "starting"
        if self._admission.draining:
            return "draining"
        if self._next_hop is not None and not self._next_hop.reachable():
            return f"next hop {self._next_hop.endpoint} unreachable"
        return None

    def close(self) -> None:
        """Release what the readiness checks hold."""
        if self._next_hop is not None:
            self._next_hop.close()

    def _log_change(self, reason: str | None) -> None:
        if reason is None:
            logger.info("falco-risk ready")
        elif reason not in ("starting", "draining"):
            logger.warning("falco-risk not ready: %s", reason)
