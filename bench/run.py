"""Run the benchmark: every pipeline, every mix, several runs; write and print the results.

For each measurement a fresh pipeline process starts and forwards to the
counting sink. The load generator (its own process) warms it up, then keeps
requests in flight for a while; the pipeline's CPU time (all threads) is read
from /proc right before and right after, once the sink has counted every
record the generator had acknowledged. A second phase sends at a fixed
moderate rate and records round-trip times, compared with sending straight
to the sink. Peak memory is the process's VmHWM at the end; idle memory its
VmRSS after start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc

from bench import environment, report, verify
from bench.pipelines import PIPELINES, Process, start, start_sink
from bench.procstat import cpu_seconds, machine_busy_seconds, memory_kib
from bench.sink import read_stats
from bench.workload import MIXES

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SINK_TIMEOUT_SECONDS = 120.0
# Nothing arriving at the sink for this long counts as quiet.
QUIET_SECONDS = 0.5
# Quiet time after start-up before idle memory is read.
SETTLE_SECONDS = 1.0


@dataclass
class Settings:
    """What to run and for how long."""

    runs: int = 3
    pipelines: tuple[str, ...] = PIPELINES
    mixes: tuple[str, ...] = tuple(MIXES)
    records: int = 1000
    linearity: bool = True
    duration: float = 8.0
    in_flight: int = 4
    warmup: float = 1.5
    rate: float = 10_000.0
    latency_duration: float = 10.0
    memory: bool = True
    memory_limit: int = 8
    memory_in_flight: tuple[int, ...] = (2, 8, 32)
    out: Path = RESULTS_DIR


@dataclass
class Measurement:
    """One pipeline, one mix, one request size, one run."""

    pipeline: str
    mix: str
    records: int
    run: int
    cpu_us_per_record: float = 0.0
    records_per_second: float = 0.0
    delivered: int = 0
    acknowledged: int = 0
    tagged: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    idle_rss_kib: int = 0
    peak_rss_kib: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    # CPU of other processes on the machine during the throughput phase, in
    # cores: what the benchmark competed with.
    foreign_cores: float = 0.0
    in_flight: int = 0
    max_in_flight: int | None = None


def run(settings: Settings) -> dict[str, object]:
    """Run everything ``settings`` asks for and return the raw results."""
    results: dict[str, object] = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
        "environment": environment.describe(),
    }
    sink = start_sink()
    try:
        with grpc.insecure_channel(sink.endpoint) as sink_channel:
            results["tagging"] = verify.check(sink, sink_channel, settings.pipelines)
            measurements, baselines = _all_runs(sink, sink_channel, settings)
            memory = _memory_sweep(sink, sink_channel, settings)
    finally:
        sink.stop()
    results["measurements"] = [asdict(m) for m in measurements]
    results["baselines"] = [asdict(m) for m in baselines]
    results["memory"] = [asdict(m) for m in memory]
    results["environment_after"] = environment.load()
    return results


def _all_runs(
    sink: Process, sink_channel: grpc.Channel, settings: Settings
) -> tuple[list[Measurement], list[Measurement]]:
    """Every pipeline, mix and request size, ``settings.runs`` times; and the direct baselines."""
    measurements: list[Measurement] = []
    baselines: list[Measurement] = []
    sizes = [settings.records, settings.records * 2] if settings.linearity else [settings.records]
    for run_index in range(settings.runs):
        # Rotate the order so that drift in machine load favours no pipeline.
        shift = run_index % len(settings.pipelines)
        order = settings.pipelines[shift:] + settings.pipelines[:shift]
        for mix in settings.mixes:
            if settings.rate:
                baselines.append(_direct(sink, mix, settings, run_index))
            for name in order:
                for size in sizes:
                    measured = _measure(name, mix, size, run_index, sink, sink_channel, settings)
                    measurements.append(measured)
                    _progress(measured)
    return measurements, baselines


def _memory_sweep(
    sink: Process, sink_channel: grpc.Channel, settings: Settings
) -> list[Measurement]:
    """falco-risk with a small in-flight limit under more and more concurrent requests."""
    if not settings.memory or "falco-risk" not in settings.pipelines:
        return []
    sweep = []
    for in_flight in settings.memory_in_flight:
        measured = _measure(
            "falco-risk", settings.mixes[-1], settings.records, 0, sink, sink_channel, settings,
            in_flight=in_flight, max_in_flight=settings.memory_limit, latency=False,
        )  # fmt: skip
        sweep.append(measured)
        _progress(measured)
    return sweep


def _measure(
    name: str,
    mix: str,
    records: int,
    run_index: int,
    sink: Process,
    sink_channel: grpc.Channel,
    settings: Settings,
    in_flight: int | None = None,
    max_in_flight: int | None = None,
    latency: bool = True,
) -> Measurement:
    """Start a fresh pipeline process, measure its throughput phase and its latency phase."""
    result = Measurement(name, mix, records, run_index, max_in_flight=max_in_flight)
    result.in_flight = in_flight or settings.in_flight
    process = start(name, sink.endpoint, max_in_flight=max_in_flight)
    try:
        time.sleep(SETTLE_SECONDS)
        result.idle_rss_kib = memory_kib(process.pid)["VmRSS"]
        _throughput(process, sink, sink_channel, result, settings)
        if latency and settings.rate and records == settings.records:
            generator = _loadgen(process.endpoint, mix, records, settings, mode="rate")
            result.latency_ms = _drive(generator)["latency_ms"]  # type: ignore[assignment]
        result.peak_rss_kib = memory_kib(process.pid)["VmHWM"]
    finally:
        process.stop()
    return result


def _throughput(
    process: Process,
    sink: Process,
    sink_channel: grpc.Channel,
    result: Measurement,
    settings: Settings,
) -> None:
    """Keep requests in flight; CPU of the pipeline per record the sink received."""
    start_count = read_stats(sink_channel)["records"]
    generator = _loadgen(
        process.endpoint, result.mix, result.records, settings, "throughput", result.in_flight
    )
    warmed = _wait_ready(generator)
    # Let the warm-up drain first: what arrives later would count as measured.
    _wait_for(sink_channel, int(start_count) + warmed)
    before = _wait_quiet(sink_channel)
    ours = (process.pid, sink.pid, os.getpid(), generator.pid)
    cpu_before = cpu_seconds(process.pid)
    ours_before = sum(cpu_seconds(pid) for pid in ours)
    busy_before = machine_busy_seconds()
    started = time.monotonic()

    answer, generator_cpu = _go(generator)
    expected = before["records"] + int(answer["records_ok"])  # type: ignore[call-overload]
    after = _wait_for(sink_channel, expected)
    cpu_after = cpu_seconds(process.pid)
    ours_after = sum(cpu_seconds(pid) for pid in ours[:3]) + generator_cpu
    busy_after = machine_busy_seconds()
    wall = time.monotonic() - started

    result.acknowledged = int(answer["records_ok"])  # type: ignore[call-overload]
    result.failed = answer["failed"]  # type: ignore[assignment]
    result.delivered = int(after["records"] - before["records"])
    result.tagged = int(after["tagged"] - before["tagged"])
    if result.delivered:
        result.cpu_us_per_record = (cpu_after - cpu_before) / result.delivered * 1e6
        result.records_per_second = result.delivered / (after["last_arrival"] - started)
    foreign = (busy_after - busy_before) - (ours_after - ours_before)
    result.foreign_cores = max(foreign, 0.0) / wall


def _direct(sink: Process, mix: str, settings: Settings, run_index: int) -> Measurement:
    """Latency straight to the sink: what the pipelines' added latency is measured against."""
    generator = _loadgen(sink.endpoint, mix, settings.records, settings, mode="rate")
    result = Measurement("direct", mix, settings.records, run_index)
    result.latency_ms = _drive(generator)["latency_ms"]  # type: ignore[assignment]
    return result


def _loadgen(
    target: str,
    mix: str,
    records: int,
    settings: Settings,
    mode: str,
    in_flight: int | None = None,
) -> subprocess.Popen[str]:
    duration = settings.duration if mode == "throughput" else settings.latency_duration
    argv = [
        sys.executable, "-m", "bench.loadgen",
        "--target", target, "--mix", mix, "--records", str(records), "--mode", mode,
        "--duration", str(duration), "--in-flight", str(in_flight or settings.in_flight),
        "--rate", str(settings.rate), "--warmup", str(settings.warmup),
    ]  # fmt: skip
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )


def _drive(generator: subprocess.Popen[str]) -> dict[str, object]:
    _wait_ready(generator)
    return _go(generator)[0]


def _wait_ready(generator: subprocess.Popen[str]) -> int:
    """Wait for the generator's ``ready``; the records it had acknowledged while warming up."""
    assert generator.stdout is not None
    word, _, count = generator.stdout.readline().partition(" ")
    if word != "ready":
        generator.kill()
        raise RuntimeError(f"load generator failed before starting: {word!r}")
    return int(count)


def _go(generator: subprocess.Popen[str]) -> tuple[dict[str, object], float]:
    """Start the measured part; its result and the generator's total CPU seconds."""
    assert generator.stdin is not None
    assert generator.stdout is not None
    generator.stdin.write("go\n")
    generator.stdin.flush()
    line = generator.stdout.readline()
    # wait4 reaps the generator and returns its CPU use, which /proc no longer has.
    _, status, usage = os.wait4(generator.pid, 0)
    generator.returncode = os.waitstatus_to_exitcode(status)
    if not line:
        raise RuntimeError("load generator ended without a result")
    answer: dict[str, object] = json.loads(line)
    return answer, usage.ru_utime + usage.ru_stime


def _wait_quiet(channel: grpc.Channel) -> dict[str, float]:
    """Sink counts once nothing has arrived for a moment."""
    deadline = time.monotonic() + SINK_TIMEOUT_SECONDS
    stats = read_stats(channel)
    while True:
        time.sleep(QUIET_SECONDS)
        again = read_stats(channel)
        if again["records"] == stats["records"] or time.monotonic() > deadline:
            return again
        stats = again


def _wait_for(channel: grpc.Channel, records: int) -> dict[str, float]:
    """Sink counts once at least ``records`` have arrived, or when it stops growing."""
    deadline = time.monotonic() + SINK_TIMEOUT_SECONDS
    stats = read_stats(channel)
    while stats["records"] < records and time.monotonic() < deadline:
        time.sleep(0.02)
        stats = read_stats(channel)
    return stats


def _progress(measurement: Measurement) -> None:
    print(
        f"  run {measurement.run + 1} {measurement.pipeline:>12} {measurement.mix:>6} "
        f"x{measurement.records:<5} in-flight {measurement.in_flight:<3} "
        f"{measurement.cpu_us_per_record:8.2f} us/record "
        f"{measurement.records_per_second:9.0f} records/s "
        f"tagged {measurement.tagged} failed {measurement.failed or '-'}",
        file=sys.stderr,
        flush=True,
    )


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    defaults = Settings()
    parser.add_argument("--runs", type=int, default=defaults.runs)
    parser.add_argument("--pipelines", default=",".join(defaults.pipelines))
    parser.add_argument("--mixes", default=",".join(defaults.mixes))
    parser.add_argument("--records", type=int, default=defaults.records)
    parser.add_argument("--no-linearity", action="store_true", help="skip the 2x-records runs")
    parser.add_argument("--duration", type=float, default=defaults.duration)
    parser.add_argument("--in-flight", type=int, default=defaults.in_flight)
    parser.add_argument("--warmup", type=float, default=defaults.warmup)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="0 skips latency")
    parser.add_argument("--latency-duration", type=float, default=defaults.latency_duration)
    parser.add_argument("--no-memory", action="store_true", help="skip the in-flight sweep")
    parser.add_argument("--out", type=Path, default=defaults.out)
    args = parser.parse_args(argv)
    return Settings(
        runs=args.runs,
        pipelines=tuple(args.pipelines.split(",")),
        mixes=tuple(args.mixes.split(",")),
        records=args.records,
        linearity=not args.no_linearity,
        duration=args.duration,
        in_flight=args.in_flight,
        warmup=args.warmup,
        rate=args.rate,
        latency_duration=args.latency_duration,
        memory=not args.no_memory,
        out=args.out,
    )


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(argv)
    results = run(settings)
    settings.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (settings.out / f"{stamp}.json").write_text(json.dumps(results, indent=1))
    table = report.markdown(results)
    (settings.out / f"{stamp}.md").write_text(table)
    print(table)
    print(f"results: {settings.out / stamp}.json", file=sys.stderr)
