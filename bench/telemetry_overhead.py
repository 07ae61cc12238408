"""What self-telemetry costs one export request: no-op meter versus the OpenTelemetry SDK.

Two measurements, each alternating both variants in rounds in the same process
and comparing medians; only ratios mean anything on a shared machine:

- Pipeline.export in-process against a sink that answers at once: the
  processing cost alone, the worst case for the relative figure;
- a real falco-risk Server on loopback, sent OTLP/gRPC requests by a client and
  forwarding them to an in-process gRPC next hop: what a request really pays.

    PYTHONPATH=processor:tests python bench/telemetry_overhead.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent import futures

import grpc
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from falco_risk.catalog import load_catalog
from falco_risk.config import Config
from falco_risk.forwarder import EXPORT_METHOD
from falco_risk.outcome import Outcome, ok
from falco_risk.pipeline import Limits, Pipeline
from falco_risk.record_count import count_records
from falco_risk.server import Server
from falco_risk.telemetry import Telemetry
from otlp_builders import falco_json, request_with

ROUNDS = 15
CALLS_PER_ROUND = 400
WIRE_CALLS_PER_ROUND = 100
RECORDS = 100

SHELL = falco_json(
    "10:00:00.0: Notice A shell was spawned in a container with an attached terminal",
    **{"user.name": "root", "container.name": "web"},
)
LINE = "2025-03-01T10:00:00Z INFO request served path=/api/v1/items status=200 took=3ms"


class NullSink:
    """Accepts every request at once."""

    endpoint = "null"

    def send(self, payload: bytes, timeout: float) -> Outcome:
        return ok(b"")

    def close(self) -> None:
        pass


def per_call_us(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    for _ in range(CALLS_PER_ROUND):
        call()
    return (time.perf_counter() - started) / CALLS_PER_ROUND * 1e6


def sdk_telemetry() -> tuple[Telemetry, InMemoryMetricReader]:
    """Telemetry as falco-risk configures it when a metrics reader is on."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOffExemplarFilter())
    return Telemetry(provider), reader


def compare(name: str, raw: bytes) -> None:
    catalog = load_catalog()
    limits = Limits(4 << 20, 10.0)
    sdk, reader = sdk_telemetry()
    sdk.observe(lambda: 0, lambda: catalog)
    plain = Pipeline(catalog, NullSink(), limits, Telemetry())
    measured = Pipeline(catalog, NullSink(), limits, sdk)

    noop_times, sdk_times = [], []
    for _ in range(ROUNDS):
        noop_times.append(per_call_us(lambda: plain.export(raw)))
        sdk_times.append(per_call_us(lambda: measured.export(raw)))
    reader.get_metrics_data()

    noop, with_sdk = statistics.median(noop_times), statistics.median(sdk_times)
    print(
        f"{name:<34} no-op {noop:8.1f} us  sdk {with_sdk:8.1f} us  "
        f"telemetry {with_sdk - noop:6.1f} us/request ({(with_sdk / noop - 1) * 100:+.1f} %)"
    )


def next_hop() -> tuple[grpc.Server, int]:
    """A gRPC server answering every log export with an empty response."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service, method = EXPORT_METHOD.strip("/").split("/")
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: b"")
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, {method: handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def compare_over_grpc(name: str, raw: bytes) -> None:
    hop, hop_port = next_hop()
    servers = []
    for telemetry in (Telemetry(), sdk_telemetry()[0]):
        config = Config(
            grpc_endpoint="127.0.0.1:0",
            http_endpoint="127.0.0.1:0",
            forward_endpoint=f"127.0.0.1:{hop_port}",
        )
        server = Server(config, load_catalog(), telemetry)
        server.start()
        servers.append(server)
    channels = [grpc.insecure_channel(f"127.0.0.1:{s.grpc.port}") for s in servers]
    calls = [c.unary_unary(EXPORT_METHOD) for c in channels]

    times: list[list[float]] = [[], []]
    for _ in range(ROUNDS):
        for index, call in enumerate(calls):
            started = time.perf_counter()
            for _ in range(WIRE_CALLS_PER_ROUND):
                call(raw, timeout=10)
            times[index].append((time.perf_counter() - started) / WIRE_CALLS_PER_ROUND * 1e6)

    for channel in channels:
        channel.close()
    for server in servers:
        server.stop()
    hop.stop(None)
    noop, with_sdk = statistics.median(times[0]), statistics.median(times[1])
    print(
        f"{name:<34} no-op {noop:8.1f} us  sdk {with_sdk:8.1f} us  "
        f"telemetry {with_sdk - noop:6.1f} us/request ({(with_sdk / noop - 1) * 100:+.1f} %)"
    )


def main() -> None:
    untouched = request_with(*[LINE] * RECORDS).SerializeToString()
    tagged = request_with(SHELL, *[LINE] * (RECORDS - 1)).SerializeToString()
    print(f"{RECORDS} records per request, median of {ROUNDS} rounds of {CALLS_PER_ROUND} calls")
    compare("fast path (no candidate)", untouched)
    compare("tagged path (1 alert)", tagged)
    compare_over_grpc("over gRPC, fast path", untouched)
    compare_over_grpc("over gRPC, tagged path", tagged)

    counting = statistics.median(
        per_call_us(lambda: count_records(untouched)) for _ in range(ROUNDS)
    )
    print(f"{'record count of the fast path':<34} {counting:8.1f} us/request (in both columns)")


if __name__ == "__main__":
    main()
