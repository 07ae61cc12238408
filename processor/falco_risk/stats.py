"""``falco-risk stats``: a live summary of a running instance, read from its /metrics."""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from prometheus_client.parser import text_string_to_metric_families

DEFAULT_URL = "http://127.0.0.1:9464/metrics"
DEFAULT_INTERVAL_SECONDS = 2.0
SCRAPE_TIMEOUT_SECONDS = 5.0
_CLEAR_SCREEN = "\x1b[H\x1b[2J"
_PREFIX = "falco_risk_"

Labels = frozenset[tuple[str, str]]

# (label, sample name) of the totals table, in display order.
_TOTALS = (
    ("requests received", "requests_received_total"),
    ("requests refused", "requests_refused_total"),
    ("records received", "records_received_total"),
    ("records tagged", "records_tagged_total"),
    ("records suppressed", "records_suppressed_total"),
    ("records malformed", "records_malformed_total"),
    ("records forwarded", "records_forwarded_total"),
    ("downstream failures", "downstream_failures_total"),
)
# (heading, sample name, label that splits it), in display order.
_BREAKDOWNS = (
    ("tagged by detection", "records_tagged_total", "security_rule_name"),
    ("suppressed by rule", "records_suppressed_total", "falco_risk_suppression_rule"),
    ("downstream failures by code", "downstream_failures_total", "error_type"),
    ("requests refused by reason", "requests_refused_total", "error_type"),
)


class ScrapeError(Exception):
    """The metrics endpoint could not be read or did not hold falco-risk's metrics."""


@dataclass(frozen=True)
class Snapshot:
    """falco-risk's samples at one moment, keyed by name without prefix and labels."""

    taken: float
    samples: dict[tuple[str, Labels], float]

    def total(self, name: str) -> float:
        """The sum of a sample over all its label sets."""
        return sum(value for (sample, _), value in self.samples.items() if sample == name)

    def by(self, name: str, label: str) -> dict[str, float]:
        """The sum of a sample per value of one label."""
        split: dict[str, float] = {}
        for (sample, labels), value in self.samples.items():
            if sample == name:
                key = dict(labels).get(label, "")
                split[key] = split.get(key, 0.0) + value
        return split

    def label(self, name: str, label: str) -> str:
        """The value of ``label`` on the first sample called ``name``."""
        for sample, labels in self.samples:
            if sample == name:
                return dict(labels).get(label, "")
        return ""


def scrape(url: str, clock: Callable[[], float] = time.monotonic) -> Snapshot:
    """Read one Prometheus text exposition and keep falco-risk's samples."""
    try:
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_SECONDS) as answer:
            text = answer.read().decode("utf-8")
    except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
        raise ScrapeError(f"cannot read {url}: {exc}") from exc
    taken = clock()

    samples: dict[tuple[str, Labels], float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith(_PREFIX):
                    key = (sample.name.removeprefix(_PREFIX), frozenset(sample.labels.items()))
                    samples[key] = sample.value
    except ValueError as exc:
        raise ScrapeError(f"{url} is not a Prometheus text exposition: {exc}") from exc
    if not samples:
        raise ScrapeError(f"{url} holds no falco-risk metrics")
    return Snapshot(taken, samples)


def render(current: Snapshot, previous: Snapshot | None, source: str) -> str:
    """The summary text: totals and rates, then each breakdown."""
    span = current.taken - previous.taken if previous else 0.0

    def rate(name: str, split: tuple[str, str] | None = None) -> str:
        if previous is None or span <= 0:
            return "-"
        if split is None:
            delta = current.total(name) - previous.total(name)
        else:
            delta = current.by(name, split[0]).get(split[1], 0.0) - previous.by(name, split[0]).get(
                split[1], 0.0
            )
        return f"{delta / span:.1f}"

    breakdowns = [
        (heading, name, split, current.by(name, split)) for heading, name, split in _BREAKDOWNS
    ]
    width = max([28] + [len(key) + 4 for *_, values in breakdowns for key in values])
    version = current.label("catalog_detections", "falco_risk_catalog_version")
    lines = [
        f"falco-risk at {source}",
        f"catalog {version or '?'}: {current.total('catalog_detections'):.0f} detection(s); "
        f"requests in flight: {current.total('requests_active'):.0f}",
        "",
        f"{'':<{width}}{'total':>12}{'per s':>10}",
    ]
    for label, name in _TOTALS:
        lines.append(f"{label:<{width}}{current.total(name):>12.0f}{rate(name):>10}")
    for heading, name, split, values in breakdowns:
        if not values:
            continue
        lines += ["", heading]
        for key, value in sorted(values.items(), key=lambda item: -item[1]):
            label = f"  {key or '-'}"
            lines.append(f"{label:<{width}}{value:>12.0f}{rate(name, (split, key)):>10}")
    return "\n".join(lines) + "\n"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``stats`` subcommand."""
    stats = commands.add_parser(
        "stats",
        help="print a live summary of a running falco-risk",
        description="Read a running falco-risk's Prometheus endpoint "
        "(metrics_prometheus_endpoint) and print its totals, rates over the interval, "
        "records tagged by detection, failures by code and requests in flight.",
    )
    stats.add_argument("--url", default=DEFAULT_URL, help=f"metrics URL (default {DEFAULT_URL})")
    stats.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_SECONDS,
        metavar="SECONDS",
        help="seconds between two readings; rates are computed over it (default 2)",
    )
    stats.add_argument(
        "--once", action="store_true", help="print one summary after two readings and exit"
    )


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``falco-risk stats``; returns 0, or 1 when the endpoint cannot be read."""
    out = out or sys.stdout
    if args.interval < 0:
        print("falco-risk: --interval must not be negative", file=sys.stderr)
        return 2
    if args.once:
        return _once(args.url, args.interval, out)
    return _live(args.url, args.interval, out)


def _once(url: str, interval: float, out: TextIO) -> int:
    try:
        first = scrape(url)
        time.sleep(interval)
        second = scrape(url) if interval > 0 else first
    except ScrapeError as exc:
        print(f"falco-risk: {exc}", file=sys.stderr)
        return 1
    out.write(render(second, first if interval > 0 else None, url))
    return 0


def _live(url: str, interval: float, out: TextIO) -> int:
    previous: Snapshot | None = None
    clear = _CLEAR_SCREEN if out.isatty() else ""
    try:
        while True:
            try:
                current = scrape(url)
            except ScrapeError as exc:
                out.write(f"{clear}falco-risk: {exc}; retrying every {interval:g}s\n")
                previous = None
            else:
                out.write(clear + render(current, previous, url) + ("" if clear else "\n"))
                previous = current
            out.flush()
            time.sleep(max(interval, 0.1))
    except KeyboardInterrupt:
        return 0
