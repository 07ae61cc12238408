"""Close refused HTTP connections politely: answer, then read and drop the rest of the request.

Closing a socket that still has unread request bytes makes the kernel send
a reset, and the client then sees "connection reset" instead of the 503 it
was sent. One thread drains every such connection for a short while
instead, so refusing a flood costs neither a thread per connection nor the
clients' answers.
"""

from __future__ import annotations

import collections
import selectors
import socket
import threading
import time

# How long, and how much, a refused connection is drained before it is closed.
DRAIN_SECONDS = 2.0
DRAIN_BYTES = 16 * 1024 * 1024
# Connections drained at once; past this a refused connection is closed at once.
MAX_DRAINING = 1024
_TICK_SECONDS = 0.1


class Drainer:
    """Owns refused connections until their clients stop sending or time runs out."""

    def __init__(self) -> None:
        self._incoming: collections.deque[socket.socket] = collections.deque()
        self._selector = selectors.DefaultSelector()
        self._deadlines: dict[socket.socket, tuple[float, int]] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http-drain", daemon=True)
        self._thread.start()

    def add(self, connection: socket.socket) -> None:
        """Take over ``connection``, whose answer has been sent."""
        try:
            connection.shutdown(socket.SHUT_WR)
            connection.setblocking(False)
        except OSError:
            connection.close()
            return
        if len(self._incoming) + len(self._deadlines) >= MAX_DRAINING:
            connection.close()
            return
        self._incoming.append(connection)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(DRAIN_SECONDS + 1)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._admit_new()
            if not self._deadlines:
                time.sleep(_TICK_SECONDS)
                continue
            for key, _ in self._selector.select(_TICK_SECONDS):
                self._read(key.fileobj)  # type: ignore[arg-type]
            self._expire()
        for connection in list(self._deadlines):
            self._close(connection)

    def _admit_new(self) -> None:
        while self._incoming:
            connection = self._incoming.popleft()
            self._deadlines[connection] = (time.monotonic() + DRAIN_SECONDS, 0)
            self._selector.register(connection, selectors.EVENT_READ)

    def _read(self, connection: socket.socket) -> None:
        deadline, drained = self._deadlines[connection]
        try:
            chunk = connection.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        drained += len(chunk)
        if not chunk or drained >= DRAIN_BYTES:
            self._close(connection)
        else:
            self._deadlines[connection] = (deadline, drained)

    def _expire(self) -> None:
        now = time.monotonic()
        for connection, (deadline, _) in list(self._deadlines.items()):
            if now >= deadline:
                self._close(connection)

    def _close(self, connection: socket.socket) -> None:
        self._selector.unregister(connection)
        del self._deadlines[connection]
        connection.close()
