"""The ``falco-risk`` command line; the only module that exits the process.

Exit codes: 0 success, 1 failure at run time, 2 bad usage, configuration or
catalog.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from falco_risk import __version__, commands_catalog, commands_tag, stats
from falco_risk.catalog import load_catalog
from falco_risk.config import load_config
from falco_risk.errors import CatalogError, ConfigError
from falco_risk.logs import configure_logging

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="falco-risk",
        description="Tag Falco alerts in OTLP log streams with MITRE ATT&CK and risk attributes.",
    )
    parser.add_argument("--version", action="version", version=f"falco-risk {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="receive OTLP logs, tag Falco alerts, forward every record",
        description="Receive OTLP logs over gRPC and HTTP, tag Falco alerts and forward "
        "every record to the next hop (or print them as OTLP JSON lines when no "
        "forward endpoint is set). Flags override FALCO_RISK_* variables, which "
        "override the configuration file.",
    )
    serve.add_argument("--config", metavar="FILE", help="YAML configuration file")
    serve.add_argument("--grpc-endpoint", metavar="HOST:PORT", help="OTLP/gRPC listen address")
    serve.add_argument("--http-endpoint", metavar="HOST:PORT", help="OTLP/HTTP listen address")
    serve.add_argument(
        "--forward-endpoint",
        metavar="HOST:PORT",
        help="next hop (OTLP/gRPC); empty prints to stdout",
    )
    serve.add_argument(
        "--catalog",
        metavar="PATH",
        action="append",
        help="detection catalog file or directory (repeatable); default: the seed detection",
    )
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    serve.add_argument("--log-format", choices=("auto", "json", "text"))

    # Detection catalog commands: check, tag, explain, import-escu, import-falco-rules.
    commands_catalog.register(commands)
    commands_tag.register(commands)
    stats.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "stats":
        return stats.main(args)
    if hasattr(args, "run"):
        code: int = args.run(args)
        return code
    return EXIT_USAGE  # pragma: no cover - argparse requires a command


def _serve(args: argparse.Namespace) -> int:
    from falco_risk.server import Server

    flags = {
        "grpc_endpoint": args.grpc_endpoint,
        "http_endpoint": args.http_endpoint,
        "forward_endpoint": args.forward_endpoint,
        "catalog": tuple(args.catalog) if args.catalog else None,
        "log_level": args.log_level,
        "log_format": args.log_format,
    }
    try:
        config = load_config(args.config, flags=flags)
        configure_logging(config.log_level, config.log_format)
        catalog = load_catalog(config.catalog)
        server = Server(config, catalog)
    except (ConfigError, CatalogError) as exc:
        print(f"falco-risk: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"falco-risk: {exc}", file=sys.stderr)
        return EXIT_FAILURE

    server.serve_forever()
    return EXIT_OK


def run() -> None:
    """Console-script entry point."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`falco-risk check | head`); that is not an error
        # of ours. Point stdout at /dev/null so the interpreter's final flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    sys.exit(code)
