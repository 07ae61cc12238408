"""Run `falco-risk serve` as a child process on free loopback ports."""

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from support.ports import LOOPBACK, free_port
from support.process import ChildProcess

STARTUP_TIMEOUT_S = 15.0
PROBE_TIMEOUT_S = 1.0
ENV_PREFIX = "FALCO_RISK_"


def http_status(url: str, timeout: float = PROBE_TIMEOUT_S) -> int | None:
    """GET `url` and return the HTTP status, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            status: int = answer.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def clean_environment() -> dict[str, str]:
    """This process's environment without falco-risk settings, so tests state their own."""
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}


class Sidecar(ChildProcess):
    """falco-risk serving OTLP/gRPC and OTLP/HTTP, forwarding to a next hop or stdout."""

    def __init__(
        self,
        forward_endpoint: str | None = None,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Prepare the command; nothing runs before start().

        Args:
            forward_endpoint: host:port of the next hop; None prints OTLP JSON on stdout.
            args: further flags, e.g. ["--catalog", path, "--log-format", "json"].
            env: variables set on top of this process's environment, from which
                every FALCO_RISK_* variable is removed first.
            cwd: working directory, for relative paths in flags or files.
        """
        self.grpc_endpoint = f"{LOOPBACK}:{free_port()}"
        self.http_endpoint = f"{LOOPBACK}:{free_port()}"
        argv = [
            sys.executable,
            "-m",
            "falco_risk",
            "serve",
            f"--grpc-endpoint={self.grpc_endpoint}",
            f"--http-endpoint={self.http_endpoint}",
        ]
        if forward_endpoint is not None:
            argv.append(f"--forward-endpoint={forward_endpoint}")
        environment = clean_environment()
        environment.update(env or {})
        super().__init__([*argv, *args], name="falco-risk", env=environment, cwd=cwd)

    @property
    def logs_url(self) -> str:
        """OTLP/HTTP logs URL."""
        return f"http://{self.http_endpoint}/v1/logs"

    def healthz(self) -> int | None:
        """Status of GET /healthz, None when nothing answers."""
        return http_status(f"http://{self.http_endpoint}/healthz")

    def readyz(self) -> int | None:
        """Status of GET /readyz, None when nothing answers."""
        return http_status(f"http://{self.http_endpoint}/readyz")

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Start falco-risk and wait until /healthz answers 200."""
        super().start()
        self.wait_until(lambda: self.healthz() == 200, timeout, "healthy")

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Wait until /readyz answers 200."""
        self.wait_until(lambda: self.readyz() == 200, timeout, "ready")

    def start_expecting_exit(self, timeout: float = STARTUP_TIMEOUT_S) -> int:
        """Start falco-risk when it should refuse to run, and return its exit code."""
        super().start()
        self.wait_until(lambda: self.returncode is not None, timeout, "exited")
        code = self.returncode
        assert code is not None
        return code
