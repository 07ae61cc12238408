"""How to start each pipeline under test, and the processes around it.

Every pipeline listens for OTLP/gRPC on a free loopback port and forwards to
the sink. Processes are started by argv with their own temporary directory;
each one's pid is the process whose CPU and memory are measured.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parent.parent
PROCESSOR_DIR = REPO / "processor"
ROTEL_PROCESSOR = Path(__file__).resolve().parent / "rotel_tagger.py"
EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
READY_TIMEOUT_SECONDS = 30.0

PIPELINES = ("floor", "rotel", "rotel+python", "falco-risk")
# Measured on request, not by default: the floor on grpc.aio.
EXTRA_PIPELINES = ("floor-aio",)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rotel_agent() -> Path:
    """The rotel-agent binary shipped in the rotel wheel."""
    import rotel

    return Path(rotel.__file__).resolve().parent / "rotel-agent"


@dataclass
class Process:
    """One running process of the benchmark, with the address it listens on."""

    name: str
    endpoint: str
    popen: subprocess.Popen[bytes]
    workdir: tempfile.TemporaryDirectory[str]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; remove its directory."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.workdir.cleanup()

    def log_tail(self) -> str:
        path = Path(self.workdir.name) / "output.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def start(name: str, forward: str, max_in_flight: int | None = None) -> Process:
    """Start pipeline ``name`` forwarding to ``forward`` and wait until it answers."""
    workdir = tempfile.TemporaryDirectory(prefix=f"bench-{name.replace('+', '-')}-")
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    argv, env = _command(name, endpoint, forward, Path(workdir.name), max_in_flight)
    with open(Path(workdir.name) / "output.log", "wb") as log:
        popen = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    process = Process(name, endpoint, popen, workdir)
    try:
        wait_ready(process)
    except Exception:
        process.stop()
        raise
    return process


def start_sink() -> Process:
    """Start the counting sink and wait until it answers."""
    workdir = tempfile.TemporaryDirectory(prefix="bench-sink-")
    endpoint = f"127.0.0.1:{free_port()}"
    with open(Path(workdir.name) / "output.log", "wb") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "bench.sink", "--listen", endpoint],
            env=_python_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    process = Process("sink", endpoint, popen, workdir)
    wait_ready(process)
    return process


def wait_ready(process: Process) -> None:
    """Block until an empty export to the process succeeds."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with grpc.insecure_channel(process.endpoint) as channel:
        export = channel.unary_unary(EXPORT)
        while True:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited early:\n{process.log_tail()}")
            try:
                export(b"", timeout=1)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{process.name} did not answer on {process.endpoint}:\n"
                        f"{process.log_tail()}"
                    ) from None
                time.sleep(0.1)


def _command(
    name: str, endpoint: str, forward: str, workdir: Path, max_in_flight: int | None
) -> tuple[list[str], dict[str, str]]:
    if name in ("floor", "floor-aio"):
        argv = [sys.executable, "-m", "bench.floor", "--listen", endpoint, "--forward", forward]
        if name == "floor-aio":
            argv.append("--aio")
        return argv, _python_env()
    if name == "falco-risk":
        env = _python_env()
        if max_in_flight is not None:
            env["FALCO_RISK_MAX_IN_FLIGHT"] = str(max_in_flight)
        argv = [
            sys.executable, "-m", "falco_risk", "serve",
            "--grpc-endpoint", endpoint,
            "--http-endpoint", f"127.0.0.1:{free_port()}",
            "--forward-endpoint", forward,
            "--log-format", "text",
        ]  # fmt: skip
        return argv, env
    if name in ("rotel", "rotel+python"):
        return _rotel_command(name, endpoint, forward, workdir)
    known = ", ".join((*PIPELINES, *EXTRA_PIPELINES))
    raise ValueError(f"unknown pipeline {name!r}; known: {known}")


def _rotel_command(
    name: str, endpoint: str, forward: str, workdir: Path
) -> tuple[list[str], dict[str, str]]:
    argv = [
        str(rotel_agent()), "start",
        "--otlp-grpc-endpoint", endpoint,
        "--otlp-http-endpoint", f"127.0.0.1:{free_port()}",
        "--otlp-receiver-traces-disabled",
        "--otlp-receiver-metrics-disabled",
        "--exporter", "otlp",
        "--otlp-exporter-endpoint", f"http://{forward}",
        "--otlp-exporter-protocol", "grpc",
        # Asked for, but this rotel build gzips its exports regardless: the
        # README's results say so next to rotel's figures.
        "--otlp-exporter-compression", "none",
        "--pid-file", str(workdir / "rotel.pid"),
        "--log-file", str(workdir / "rotel.log"),
    ]  # fmt: skip
    env = dict(os.environ)
    if name == "rotel+python":
        argv += ["--otlp-with-logs-processor", str(ROTEL_PROCESSOR)]
        # rotel embeds the system's libpython; it finds falco_risk and its
        # dependencies through PYTHONPATH.
        paths = [str(PROCESSOR_DIR), sysconfig.get_paths()["purelib"]]
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return argv, env


def _python_env() -> dict[str, str]:
    """The environment for Python children: this checkout's package and bench first."""
    env = dict(os.environ)
    paths = [str(PROCESSOR_DIR), str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env
