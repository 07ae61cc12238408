"""Turn raw benchmark results into medians, ratios and Markdown tables."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Row = Mapping[str, Any]
MIB = 1024.0

TARGETS = {
    "1pct_vs_floor": 1.15,
    "100pct_vs_floor": 3.5,
    "100pct_cheaper_than_peer": 4.0,
    "idle_rss_mib": 60.0,
}


def group(rows: Iterable[Row], *keys: str) -> dict[tuple[Any, ...], list[Row]]:
    """Rows grouped by the values of ``keys``, in first-seen order."""
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[key] for key in keys)].append(row)
    return groups


def median(rows: Sequence[Row], key: str, sub: str | None = None) -> float:
    """The median of a field (or of a field of a dict field) over rows that have it."""
    values = [row[key][sub] if sub else row[key] for row in rows if not sub or sub in row[key]]
    return statistics.median(values) if values else float("nan")


def summarise(results: Mapping[str, Any]) -> dict[tuple[str, str, int], dict[str, float]]:
    """Medians per pipeline, mix and request size, with ratios to the floor and the peer."""
    baselines = group(results["baselines"], "mix")
    summary: dict[tuple[str, str, int], dict[str, float]] = {}
    for (pipeline, mix, records), rows in group(
        results["measurements"], "pipeline", "mix", "records"
    ).items():
        cpu = [row["cpu_us_per_record"] for row in rows]
        direct = baselines.get((mix,), [])
        entry = {
            "cpu": statistics.median(cpu),
            "cpu_min": min(cpu),
            "cpu_max": max(cpu),
            "rps": median(rows, "records_per_second"),
            "idle_mib": median(rows, "idle_rss_kib") / MIB,
            "peak_mib": max(row["peak_rss_kib"] for row in rows) / MIB,
            "p50": median(rows, "latency_ms", "p50"),
            "p99": median(rows, "latency_ms", "p99"),
            "added_p50": median(rows, "latency_ms", "p50") - median(direct, "latency_ms", "p50"),
            "added_p99": median(rows, "latency_ms", "p99") - median(direct, "latency_ms", "p99"),
            "tagged_share": sum(r["tagged"] for r in rows)
            / max(sum(r["delivered"] for r in rows), 1),
            "lost": sum(r["acknowledged"] - r["delivered"] for r in rows),
            "foreign_cores": median(rows, "foreign_cores"),
            "runs": len(rows),
        }
        summary[(pipeline, mix, records)] = entry
    for (_, mix, records), entry in summary.items():
        floor = summary.get(("floor", mix, records))
        peer = summary.get(("rotel+python", mix, records))
        entry["x_floor"] = entry["cpu"] / floor["cpu"] if floor else float("nan")
        entry["peer_over_this"] = peer["cpu"] / entry["cpu"] if peer else float("nan")
    return summary


def markdown(results: Mapping[str, Any]) -> str:
    """The README's results section body: environment, main table, linearity, memory, targets."""
    summary = summarise(results)
    settings = results["settings"]
    base = settings["records"]
    lines = [*_environment(results), *_tagging(results), ""]

    lines += [
        f"Requests of {base} records, {settings['in_flight']} in flight; medians of "
        f"{settings['runs']} runs (min-max of CPU in brackets). Latency at "
        f"{settings['rate']:.0f} records/s; 'added' is over sending straight to the sink.",
        "",
        "| pipeline | mix | CPU us/record | x floor | rotel+python / this | records/s "
        "| idle RSS MiB | peak RSS MiB | latency p50 / p99 ms | added p50 / p99 ms | tagged |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (pipeline, mix, records), e in summary.items():
        if records != base:
            continue
        lines.append(
            f"| {pipeline} | {mix} | {e['cpu']:.2f} [{e['cpu_min']:.2f}-{e['cpu_max']:.2f}] "
            f"| {_n(e['x_floor'])} | {_n(e['peer_over_this'])} | {e['rps']:,.0f} "
            f"| {e['idle_mib']:.1f} | {e['peak_mib']:.1f} "
            f"| {_n(e['p50'], '.1f')} / {_n(e['p99'], '.1f')} "
            f"| {_n(e['added_p50'], '+.1f')} / {_n(e['added_p99'], '+.1f')} "
            f"| {e['tagged_share']:.0%} |"
        )

    lines += ["", *_linearity(summary, base), "", *_memory(results), "", *_targets(summary, base)]
    lost = sum(e["lost"] for e in summary.values())
    if lost:
        lines += ["", f"**{lost} acknowledged records never reached the sink.**"]
    return "\n".join(lines) + "\n"


def _n(value: float, spec: str = ".2f") -> str:
    """A number, or n/a when it was not measured (NaN)."""
    return "n/a" if value != value else format(value, spec)


def _environment(results: Mapping[str, Any]) -> list[str]:
    env = results["environment"]
    after = results.get("environment_after", {})
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    foreign = [m["foreign_cores"] for m in results["measurements"]]
    return [
        f"Machine: {env['cpu']}, {env['cores']} cores, {env['memory_gib']} GiB, "
        f"Linux {env['kernel']}, Python {env['python']}; {packages}; commit {env['commit']}.",
        f"Load average before: {_load(env)}; after: {_load(after)}. Other processes used "
        f"a median of {statistics.median(foreign) if foreign else 0:.2f} cores "
        f"(max {max(foreign, default=0):.2f}) during the measured phases.",
    ]


def _tagging(results: Mapping[str, Any]) -> list[str]:
    verdicts = results.get("tagging") or {}
    if not verdicts:
        return []
    checked = "; ".join(f"{name}: {verdict}" for name, verdict in verdicts.items())
    return [f"Tagged output compared with falco-risk's decoded reference path: {checked}."]


def _load(env: Mapping[str, Any]) -> str:
    values = env.get("load_average")
    return " / ".join(f"{v:.2f}" for v in values) if values else "n/a"


def _linearity(summary: Mapping[tuple[str, str, int], Mapping[str, float]], base: int) -> list[str]:
    rows = []
    for (pipeline, mix, records), entry in summary.items():
        double = summary.get((pipeline, mix, records * 2))
        if records == base and double:
            rows.append(
                f"| {pipeline} | {mix} | {entry['cpu']:.2f} | {double['cpu']:.2f} "
                f"| {double['cpu'] / entry['cpu']:.2f} |"
            )
    if not rows:
        return []
    return [
        f"Linearity: CPU per record with {base} and {2 * base} records per request "
        "(a ratio at or below 1.00 means doubling the records did not more than double the cost).",
        "",
        f"| pipeline | mix | us/record x{base} | us/record x{2 * base} | ratio |",
        "|---|---|---|---|---|",
        *rows,
    ]


def _memory(results: Mapping[str, Any]) -> list[str]:
    rows = results.get("memory") or []
    if not rows:
        return []
    limit = rows[0]["max_in_flight"]
    lines = [
        f"Memory under load: falco-risk with max_in_flight {limit}, {rows[0]['mix']} mix, "
        "senders keeping more and more requests in flight.",
        "",
        "| requests in flight | peak RSS MiB | records/s | refused (UNAVAILABLE) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        refused = sum(row["failed"].values())
        lines.append(
            f"| {row['in_flight']} | {row['peak_rss_kib'] / MIB:.1f} "
            f"| {row['records_per_second']:,.0f} | {refused} |"
        )
    return lines


def _targets(summary: Mapping[tuple[str, str, int], Mapping[str, float]], base: int) -> list[str]:
    one = summary.get(("falco-risk", "1pct", base))
    all_ = summary.get(("falco-risk", "100pct", base))
    if not one or not all_:
        return []
    checks = [
        ("1 % mix CPU <= 1.15 x floor", one["x_floor"], one["x_floor"] <= 1.15, "x"),
        ("100 % mix CPU <= 3.5 x floor", all_["x_floor"], all_["x_floor"] <= 3.5, "x"),
        (
            "100 % mix >= 4 x cheaper than rotel+python",
            all_["peer_over_this"],
            all_["peer_over_this"] >= 4.0,
            "x",
        ),
        ("idle RSS <= 60 MiB", one["idle_mib"], one["idle_mib"] <= 60.0, " MiB"),
    ]
    lines = ["| target | falco-risk | met |", "|---|---|---|"]
    for name, value, met, unit in checks:
        lines.append(f"| {name} | {_n(value)}{unit} | {'yes' if met else 'no'} |")
    return lines
