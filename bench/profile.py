"""Where falco-risk's data path spends its time, without the network: ``python -m bench.profile``.

Runs Pipeline.export on the benchmark's requests with a sink that answers at
once, and prints the CPU time per record; with ``--profile`` it prints a
cProfile table as well (or writes a pyinstrument report when that package
is installed and ``--pyinstrument FILE`` is given).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from bench.workload import ALL_MIXES, build_requests
from falco_risk.catalog import load_catalog
from falco_risk.outcome import Outcome, ok
from falco_risk.pipeline import Limits, Pipeline


class NullSink:
    """Accepts every request at once, like a next hop with no cost."""

    endpoint = "null"

    def send(self, payload: bytes, timeout: float) -> Outcome:
        return ok(b"")

    def close(self) -> None:
        pass


def cpu_per_record(pipeline: Pipeline, requests: list[bytes], rounds: int, records: int) -> float:
    """Microseconds of CPU per record over ``rounds`` passes over ``requests``."""
    started = time.process_time()
    for _ in range(rounds):
        for raw in requests:
            pipeline.export(raw)
    return (time.process_time() - started) / (rounds * len(requests) * records) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mix", choices=sorted(ALL_MIXES), default="100pct")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print a cProfile table")
    parser.add_argument("--pyinstrument", metavar="FILE", help="write a pyinstrument HTML report")
    args = parser.parse_args()

    requests = build_requests(ALL_MIXES[args.mix], args.records)
    pipeline = Pipeline(load_catalog(), NullSink(), Limits(4 << 20, 10.0))
    cpu_per_record(pipeline, requests[:1], 1, args.records)  # warm caches and imports

    if args.pyinstrument:
        from pyinstrument import Profiler

        with Profiler(interval=0.0005) as sampler:
            cost = cpu_per_record(pipeline, requests, args.rounds, args.records)
        with open(args.pyinstrument, "w") as report:
            report.write(sampler.output_html())
    elif args.profile:
        with cProfile.Profile() as profiler:
            cost = cpu_per_record(pipeline, requests, args.rounds, args.records)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    else:
        cost = cpu_per_record(pipeline, requests, args.rounds, args.records)
    print(f"{args.mix} x{args.records}: {cost:.2f} us CPU per record (in process, no network)")


if __name__ == "__main__":
    main()
