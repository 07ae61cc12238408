"""The ``tag`` and ``explain`` commands: the catalog applied to alerts on the command line."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from falco_risk import attributes as attr
from falco_risk import otlp_json
from falco_risk.alert_lines import requests_from_lines
from falco_risk.catalog import load_catalog
from falco_risk.commands_catalog import EXIT_OK, EXIT_USAGE, format_table
from falco_risk.config import load_config
from falco_risk.errors import CatalogError, ConfigError
from falco_risk.explain import explain_record
from falco_risk.falco import MalformedAlertError, read_alert
from falco_risk.otlp_values import kvlist_to_dict, to_python
from falco_risk.tagger import Tagger

CONTAINER_KEYS = ("container.name", "container_name", "container.id", "container_id")
USER_KEYS = ("user.name", "user")
_CELL = 40


def register(commands: Any) -> None:
    """Add the tag and explain commands to the CLI's subparsers."""
    tag = commands.add_parser(
        "tag",
        help="tag Falco alerts from a file or stdin and print them as OTLP JSON",
        description="Read Falco alerts (JSON lines, text lines or OTLP JSON lines) and "
        "print each as an OTLP JSON line with the attributes it would get.",
    )
    _common(tag)
    tag.add_argument(
        "--table", action="store_true", help="print a table of matches and a summary instead"
    )
    tag.set_defaults(run=run_tag)

    explain = commands.add_parser(
        "explain",
        help="say for each alert which detection matched, or why none did",
        description="For each input line: whether it is a Falco alert, which detection "
        "matched (or which condition failed, or which suppression applied), and "
        "where each extracted field value came from.",
    )
    _common(explain)
    explain.set_defaults(run=run_explain)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="?", default="-", metavar="FILE|-", help="default: stdin")
    parser.add_argument(
        "--catalog",
        metavar="PATH",
        action="append",
        help="catalog file or directory (repeatable); also the catalog key and FALCO_RISK_CATALOG",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML configuration file")


def run_tag(args: argparse.Namespace) -> int:
    """Tag each input line and print it, or a table."""
    tagger = _tagger(args)
    if tagger is None:
        return EXIT_USAGE
    rows: list[tuple[str, ...]] = [("RULE", "CONTAINER", "USER", "SCORE", "MESSAGE")]
    by_detection: Counter[str] = Counter()
    seen = 0
    with _open(args.input) as lines:
        if lines is None:
            return EXIT_USAGE
        for _, request in requests_from_lines(lines):
            originals = [to_python(r.body) for r in _records(request)]
            tagger.tag(request)
            if not args.table:
                print(otlp_json.dumps(request))
                continue
            for record, body in zip(_records(request), originals, strict=True):
                seen += 1
                found = kvlist_to_dict(record.attributes)
                if attr.SECURITY_RULE_NAME in found:
                    by_detection[str(found[attr.SECURITY_RULE_NAME])] += 1
                    rows.append(_row(body, found, record))
    if args.table:
        print(format_table(rows) if len(rows) > 1 else "no alert was tagged")
        print()
        summary: list[tuple[str, ...]] = [("DETECTION", "TAGGED")]
        summary += [(name, str(count)) for name, count in by_detection.most_common()]
        print(format_table(summary))
        print(f"{seen} record(s) read, {sum(by_detection.values())} tagged")
    return EXIT_OK


def run_explain(args: argparse.Namespace) -> int:
    """Explain each input line."""
    tagger = _tagger(args)
    if tagger is None:
        return EXIT_USAGE
    print(f"catalog {tagger.catalog.version}: {len(tagger.catalog.enabled)} enabled detection(s)")
    with _open(args.input) as lines:
        if lines is None:
            return EXIT_USAGE
        for number, request in requests_from_lines(lines):
            for resource_logs in request.resource_logs:
                resource = kvlist_to_dict(resource_logs.resource.attributes)
                for scope_logs in resource_logs.scope_logs:
                    for index, record in enumerate(scope_logs.log_records):
                        print(f"line {number}, record {index + 1}:")
                        print("\n".join(explain_record(tagger, record, resource)))
    return EXIT_OK


def _tagger(args: argparse.Namespace) -> Tagger | None:
    flags = {"catalog": tuple(args.catalog) if args.catalog else None}
    try:
        config = load_config(args.config, flags=flags)
        return Tagger(load_catalog(config.catalog))
    except (ConfigError, CatalogError) as exc:
        print(f"falco-risk: {exc}", file=sys.stderr)
        return None


@contextmanager
def _open(name: str) -> Iterator[TextIO | None]:
    if name == "-":
        yield sys.stdin
        return
    try:
        stream = open(name, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError as exc:
        print(f"falco-risk: {name}: cannot read: {exc.strerror}", file=sys.stderr)
        yield None
        return
    with stream:
        yield stream


def _records(request: Any) -> list[Any]:
    return [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]


def _row(body: object, found: dict[str, object], record: Any) -> tuple[str, ...]:
    try:
        alert = read_alert(body, kvlist_to_dict(record.attributes))
    except MalformedAlertError:
        alert = None
    container = alert.field(CONTAINER_KEYS) if alert else None
    user = alert.field(USER_KEYS) if alert else None
    return (
        _cut((alert.rule if alert else None) or "-"),
        _cut(container.value if container else "-"),
        _cut(user.value if user else "-"),
        str(found.get(attr.RISK_SCORE, "-")),
        str(found.get(attr.RISK_MESSAGE, "")),
    )


def _cut(text: str) -> str:
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"
