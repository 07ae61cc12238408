"""The load generator: sends the same pre-built requests to one pipeline, in its own process.

Two modes. ``throughput`` keeps a fixed number of requests in flight for a
while; ``rate`` sends at a fixed rate of records per second and reports the
round-trip time of every request. The generator builds its requests, warms
the target up, prints ``ready`` and the records acknowledged while warming
up, and waits for a line on stdin before the measured part starts, so the
orchestrator can read the target's CPU counters right before and after. The
result is one JSON line on stdout.

Run: ``python -m bench.loadgen --target HOST:PORT --mix 1pct --mode throughput``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc

from bench.workload import ALL_MIXES, build_requests

EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
CALL_TIMEOUT_SECONDS = 60.0
# In rate mode, requests still unanswered beyond this many make the sender
# wait: the target cannot sustain the rate, and the report says so.
RATE_MAX_IN_FLIGHT = 64


@dataclass
class Tally:
    """Answers received, thread-safe."""

    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self, future: grpc.Future, started: float) -> None:
        elapsed = time.perf_counter() - started
        error = future.exception()
        with self.lock:
            if error is None:
                self.ok += 1
                self.latencies.append(elapsed)
            else:
                self.failed[error.code().name] += 1  # type: ignore[attr-defined]


def run_throughput(
    send: grpc.UnaryUnaryMultiCallable, requests: list[bytes], in_flight: int, duration: float
) -> tuple[Tally, float]:
    """Keep ``in_flight`` requests outstanding for ``duration`` seconds, then drain."""
    tally = Tally()
    slots = threading.Semaphore(in_flight)
    started = time.perf_counter()
    index = 0
    while time.perf_counter() - started < duration:
        slots.acquire()
        _issue(send, requests[index % len(requests)], tally, slots)
        index += 1
    for _ in range(in_flight):
        slots.acquire()
    return tally, time.perf_counter() - started


def run_rate(
    send: grpc.UnaryUnaryMultiCallable,
    requests: list[bytes],
    requests_per_second: float,
    duration: float,
) -> tuple[Tally, float]:
    """Send one request every 1/rate seconds for ``duration`` seconds, then drain."""
    tally = Tally()
    slots = threading.Semaphore(RATE_MAX_IN_FLIGHT)
    interval = 1.0 / requests_per_second
    started = time.perf_counter()
    count = int(duration * requests_per_second)
    for index in range(count):
        delay = started + index * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        slots.acquire()
        _issue(send, requests[index % len(requests)], tally, slots)
    for _ in range(RATE_MAX_IN_FLIGHT):
        slots.acquire()
    return tally, time.perf_counter() - started


def _issue(
    send: grpc.UnaryUnaryMultiCallable, request: bytes, tally: Tally, slots: threading.Semaphore
) -> None:
    started = time.perf_counter()
    future = send.future(request, timeout=CALL_TIMEOUT_SECONDS)

    def finished(done: grpc.Future) -> None:
        tally.done(done, started)
        slots.release()

    future.add_done_callback(finished)


def summary(tally: Tally, elapsed: float, records_per_request: int) -> dict[str, object]:
    """The JSON-ready result of one run."""
    result: dict[str, object] = {
        "ok": tally.ok,
        "failed": dict(tally.failed),
        "records_ok": tally.ok * records_per_request,
        "elapsed": elapsed,
    }
    latencies = sorted(tally.latencies)
    if latencies:
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        result["latency_ms"] = {
            "p50": cuts[49] * 1000,
            "p90": cuts[89] * 1000,
            "p99": cuts[98] * 1000,
            "max": latencies[-1] * 1000,
            "n": len(latencies),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True, metavar="HOST:PORT")
    parser.add_argument("--mix", choices=sorted(ALL_MIXES), required=True)
    parser.add_argument("--records", type=int, default=1000, help="records per request")
    parser.add_argument("--mode", choices=("throughput", "rate"), required=True)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of sending")
    parser.add_argument("--in-flight", type=int, default=4, help="throughput mode")
    parser.add_argument("--rate", type=float, default=10_000, help="records/s, rate mode")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before 'ready'")
    args = parser.parse_args()

    requests = build_requests(ALL_MIXES[args.mix], args.records)
    channel = grpc.insecure_channel(
        args.target, options=[("grpc.max_send_message_length", 256 << 20)]
    )
    send = channel.unary_unary(EXPORT)
    warmed = 0
    if args.warmup > 0:
        warmup, _ = run_throughput(send, requests, args.in_flight, args.warmup)
        warmed = warmup.ok * args.records
    # The records acknowledged so far: a pipeline that answers before it
    # forwards may still be delivering them.
    print(f"ready {warmed}", flush=True)
    sys.stdin.readline()

    if args.mode == "throughput":
        tally, elapsed = run_throughput(send, requests, args.in_flight, args.duration)
    else:
        tally, elapsed = run_rate(send, requests, args.rate / args.records, args.duration)
    print(json.dumps(summary(tally, elapsed, args.records)), flush=True)
    channel.close()


if __name__ == "__main__":
    main()
