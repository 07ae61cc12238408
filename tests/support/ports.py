"""Free loopback TCP ports and waiting for a listener."""

import socket
import time

LOOPBACK = "127.0.0.1"
POLL_INTERVAL_S = 0.02


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on `host` that nothing listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """Split "host:port" (or "[v6]:port") into host and port."""
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def port_is_open(host: str, port: int) -> bool:
    """Return whether a TCP connection to `host:port` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Wait until `host:port` accepts TCP connections, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while not port_is_open(host, port):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")
        time.sleep(POLL_INTERVAL_S)


def wait_for_port_closed(host: str, port: int, timeout: float) -> None:
    """Wait until `host:port` refuses TCP connections, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while port_is_open(host, port):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} still listens after {timeout}s")
        time.sleep(POLL_INTERVAL_S)
