"""Repeated problems summarised in at most one warning per interval."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RateLimitedWarning:
    """Counts problems by kind and logs one summary line per interval at most.

    The first problem is logged at once; those that follow within the interval
    are counted and reported, by kind, with the next line. What is still
    pending when the process stops is reported by ``flush``.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._what = what
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._example = ""
        self._next = 0.0

    def add(self, count: int, example: str, kind: str = "") -> None:
        """Count ``count`` problems of ``kind``; log the summary if the interval has passed."""
        with self._lock:
            self._pending[kind] = self._pending.get(kind, 0) + count
            self._example = example
            now = self._clock()
            if now < self._next:
                return
            self._next = now + self._interval
            pending, example = self._take()
        self._log(pending, example)

    def flush(self) -> None:
        """Log what is pending now, if anything."""
        with self._lock:
            pending, example = self._take()
        if pending:
            self._log(pending, example)

    def _take(self) -> tuple[dict[str, int], str]:
        pending, self._pending = self._pending, {}
        return pending, self._example

    def _log(self, pending: dict[str, int], example: str) -> None:
        kinds = ", ".join(f"{kind}={count}" for kind, count in sorted(pending.items()) if kind)
        self._logger.warning(
            "%s: %d%s; last: %s",
            self._what,
            sum(pending.values()),
            f" ({kinds})" if kinds else "",
            example,
        )
