"""The ``check``, ``import-escu`` and ``import-falco-rules`` commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from falco_risk import attack
from falco_risk.catalog import Catalog, load_catalog, validate_text
from falco_risk.errors import CatalogError
from falco_risk.escu import EscuError, import_escu
from falco_risk.falco_rules import FalcoRulesError, import_falco_rules, parse_priority_scores
from falco_risk.importing import ImportResult, dump_catalog

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def register(commands: Any) -> None:
    """Add the catalog commands to the CLI's subparsers."""
    check = commands.add_parser(
        "check",
        help="validate catalogs and list their detections",
        description="Load the seed detection and the given catalog files or directories, "
        "validate everything, and print one line per detection. Exit 2 with one line "
        "naming the file, the detection and the key when something is wrong.",
    )
    check.add_argument("catalogs", nargs="*", metavar="CATALOG", help="file or directory")
    check.set_defaults(run=run_check)

    escu = commands.add_parser(
        "import-escu",
        help="convert Splunk ESCU detection YAML into a catalog",
        description="Convert Splunk security_content detection files (the older tags: "
        "format and the rba: format) into one catalog file. What could not be "
        "translated is reported on stderr; such detections are written disabled.",
    )
    escu.add_argument("files", nargs="+", metavar="FILE.yml")
    escu.add_argument(
        "-o", "--output", metavar="OUT", help="catalog file to write (default: stdout)"
    )
    escu.set_defaults(run=run_import_escu)

    rules = commands.add_parser(
        "import-falco-rules",
        help="convert Falco rule files into a catalog",
        description="Convert Falco rule files into one catalog file, one detection per "
        "enabled rule with ATT&CK tags, keyed on the rule name. Rules without a "
        "technique tag are reported on stderr and left out.",
    )
    rules.add_argument("files", nargs="+", metavar="RULES.yaml")
    rules.add_argument(
        "-o", "--output", metavar="OUT", help="catalog file to write (default: stdout)"
    )
    rules.add_argument(
        "--priority-scores",
        metavar="P=S,...",
        default="",
        help="risk score per Falco priority over the defaults, e.g. notice=40,warning=60",
    )
    rules.set_defaults(run=run_import_falco_rules)


def run_check(args: argparse.Namespace) -> int:
    """Validate the catalogs and print their detections."""
    try:
        catalog = load_catalog(args.catalogs)
    except CatalogError as exc:
        print(f"falco-risk: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(summary_table(catalog))
    return EXIT_OK


def summary_table(catalog: Catalog) -> str:
    """The detections of a catalog as an aligned text table with a closing line."""
    rows: list[tuple[str, ...]] = [("ID", "NAME", "VERSION", "SCORE", "TECHNIQUES", "ENABLED")]
    for d in catalog.detections:
        techniques = ",".join(dict.fromkeys(t.technique_id for t in d.techniques)) or "-"
        enabled = "yes" if d.enabled else "no"
        rows.append((d.id, d.name, str(d.version), str(d.risk_score), techniques, enabled))
    enabled_count = len(catalog.enabled)
    closing = (
        f"catalog {catalog.version}: {len(catalog.detections)} detection(s), "
        f"{enabled_count} enabled, from {', '.join(catalog.sources)}"
    )
    return format_table(rows) + "\n" + closing


def format_table(rows: Sequence[tuple[str, ...]]) -> str:
    """Rows as left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def run_import_escu(args: argparse.Namespace) -> int:
    """Convert ESCU files and write the catalog."""
    try:
        result = import_escu(args.files)
    except EscuError as exc:
        print(f"falco-risk: {exc}", file=sys.stderr)
        return EXIT_USAGE
    header = (
        "Imported by `falco-risk import-escu` from: "
        + ", ".join(Path(f).name for f in args.files)
        + f"\nATT&CK facts: {attack.attack_version()}"
    )
    return _write(result, header, args.output)


def run_import_falco_rules(args: argparse.Namespace) -> int:
    """Convert Falco rule files and write the catalog."""
    try:
        scores = parse_priority_scores(args.priority_scores)
        result = import_falco_rules(args.files, scores)
    except ValueError as exc:  # FalcoRulesError and bad --priority-scores alike
        prefix = "" if isinstance(exc, FalcoRulesError) else "--priority-scores: "
        print(f"falco-risk: {prefix}{exc}", file=sys.stderr)
        return EXIT_USAGE
    header = (
        "Imported by `falco-risk import-falco-rules` from: "
        + ", ".join(Path(f).name for f in args.files)
        + "\nRisk score per priority: "
        + ", ".join(f"{name}={score}" for name, score in scores.items())
        + f"\nATT&CK facts: {attack.attack_version()}"
    )
    return _write(result, header, args.output)


def _write(result: ImportResult, header: str, output: str | None) -> int:
    for line in result.report:
        print(f"falco-risk: note: {line}", file=sys.stderr)
    text = dump_catalog(result, header)
    try:
        validate_text(text.encode(), output or "<output>")
    except CatalogError as exc:
        print(f"falco-risk: the imported catalog does not load: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"falco-risk: {output}: cannot write: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"falco-risk: wrote {len(result.detections)} detection(s) to {output}", file=sys.stderr)
    return EXIT_OK
