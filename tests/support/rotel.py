"""Run rotel-agent from the rotel wheel as a real OTLP hop.

Facts about the shipped binary (rotel 0.0.1-alpha10 inside wheel 0.0.1a15),
established by short runs against CaptureServer on loopback:

- Flags: `start` without `--daemon` keeps it a child and writes no pid or
  log file; it logs to stdout (`--log-format json` gives one JSON object a
  line). `--exporter otlp --otlp-exporter-endpoint http://HOST:PORT` exports
  OTLP/gRPC; `--exporter blackhole` discards. `--disable-batching` sends each
  received request on at once, unchanged; with batching (default 200 ms,
  `--logs-batch-timeout`) several requests are merged into one request with
  one resource_logs each.
- Acknowledgement: the receiver answers OK as soon as it has the data, before
  and whatever the exporter's outcome (OK even when the next hop delays,
  refuses or is down). A sender in front of rotel never learns of a loss
  behind it.
- Retries: UNAVAILABLE, RESOURCE_EXHAUSTED, INTERNAL, DEADLINE_EXCEEDED and
  an unreachable target (connection refused) are retried with jittered
  exponential back-off bounded by `--otlp-exporter-retry-initial-backoff`
  (default 5s) and `--otlp-exporter-retry-max-backoff` (default 30s).
  RetryInfo in the status details is ignored. Every other code (including
  INVALID_ARGUMENT, UNIMPLEMENTED, CANCELLED, ABORTED, DATA_LOSS) drops the
  batch at once, logging "Exporting failed, dropping data.".
- Queue: failed batches stay in memory only, each retried on its own and
  concurrently (their order at the target is not kept), until
  `--otlp-exporter-retry-max-elapsed-time` (default 300s) after its first
  attempt; then it is dropped with the same log line.
- A partial_success answer counts as success and is not even logged.
- A reply slower than `--otlp-exporter-request-timeout` (default 5s) is
  retried as a failure although the target kept the first copy: duplicates.
- Compression: it always sends gzip; `--otlp-exporter-compression none` and
  `--otlp-exporter-logs-compression none` have no effect in this build. A
  target that does not accept gzip answers UNIMPLEMENTED and loses the data.
- Receiver limit: gRPC requests above 4194304 bytes decoded are refused with
  OUT_OF_RANGE (`--otlp-grpc-max-recv-msg-size-mib`, default 4).
- Readiness: the receivers listen a moment before rotel logs "Starting
  Rotel."; a SIGTERM before that line kills it outright (exit -15), so start()
  waits for both.
- SIGTERM: batches pending in the batcher are flushed at once; in-flight and
  retrying exports get about 3 s, then are abandoned (lost). The exit code is
  0 when idle; with abandoned work it is 0 or 1 depending on a race.
"""

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.ports import LOOPBACK, free_port, port_is_open, split_endpoint
from support.process import ChildProcess

STARTUP_TIMEOUT_S = 10.0
STARTED_MESSAGE = "Starting Rotel."
DROPPED_MESSAGE = "Exporting failed, dropping data."
RETRY_MESSAGE = "Exporting failed, will retry again after delay."


def rotel_agent() -> Path:
    """Path of the rotel-agent binary shipped in the rotel wheel."""
    spec = importlib.util.find_spec("rotel")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the rotel package is not installed")
    return Path(spec.origin).parent / "rotel-agent"


@dataclass(frozen=True)
class Retry:
    """Back-off of rotel's OTLP exporter, as rotel duration strings."""

    initial_backoff: str = "50ms"
    max_backoff: str = "200ms"
    max_elapsed_time: str = "10s"
    request_timeout: str = "5s"

    def args(self) -> list[str]:
        """The rotel flags for this back-off."""
        return [
            f"--otlp-exporter-retry-initial-backoff={self.initial_backoff}",
            f"--otlp-exporter-retry-max-backoff={self.max_backoff}",
            f"--otlp-exporter-retry-max-elapsed-time={self.max_elapsed_time}",
            f"--otlp-exporter-request-timeout={self.request_timeout}",
        ]


class Rotel(ChildProcess):
    """rotel-agent with OTLP gRPC and HTTP receivers on free loopback ports."""

    def __init__(
        self,
        exporter_endpoint: str | None,
        *,
        batching: bool = False,
        retry: Retry | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.grpc_endpoint = f"{LOOPBACK}:{free_port()}"
        self.http_endpoint = f"{LOOPBACK}:{free_port()}"
        argv = [
            str(rotel_agent()),
            "--log-format=json",
            "start",
            f"--otlp-grpc-endpoint={self.grpc_endpoint}",
            f"--otlp-http-endpoint={self.http_endpoint}",
            *exporter_args(exporter_endpoint, retry or Retry()),
        ]
        if not batching:
            argv.append("--disable-batching")
        super().__init__([*argv, *extra_args], name="rotel-agent")

    @property
    def logs_url(self) -> str:
        """OTLP/HTTP logs URL of the receiver."""
        return f"http://{self.http_endpoint}/v1/logs"

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Start rotel and wait until both receivers listen and it has logged its start."""
        super().start()
        self.wait_until(self._listening, timeout, "listening")
        self.wait_for_output(STARTED_MESSAGE, timeout)

    def events(self) -> list[dict[str, Any]]:
        """rotel's JSON log lines so far, parsed."""
        lines = self.stdout().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def count_events(self, message: str) -> int:
        """How many log lines carry `message`, e.g. DROPPED_MESSAGE."""
        return sum(1 for event in self.events() if event.get("msg") == message)

    def _listening(self) -> bool:
        endpoints = (self.grpc_endpoint, self.http_endpoint)
        return all(port_is_open(*split_endpoint(endpoint)) for endpoint in endpoints)


def exporter_args(endpoint: str | None, retry: Retry) -> list[str]:
    """Flags exporting OTLP/gRPC to `endpoint`, or to a blackhole when None."""
    if endpoint is None:
        return ["--exporter=blackhole"]
    return ["--exporter=otlp", f"--otlp-exporter-endpoint=http://{endpoint}", *retry.args()]
