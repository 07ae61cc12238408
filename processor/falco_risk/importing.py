"""What the importers share: their result, and writing it out as a catalog file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass
class ImportResult:
    """Catalog entries built from source files, and what the reader should know about them."""

    detections: list[dict[str, Any]] = field(default_factory=list)
    report: list[str] = field(default_factory=list)

    def note(self, where: str, message: str) -> None:
        """Add one line to the report."""
        self.report.append(f"{where}: {message}")


class _Dumper(yaml.SafeDumper):
    """Writes block lists indented under their key, and long strings folded."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.Node:
    flow = bool(items) and all(isinstance(i, str | int) and len(str(i)) < 60 for i in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(str, _str)


def dump_catalog(result: ImportResult, header: str) -> str:
    """A catalog file holding the imported detections, headed by comment lines."""
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    body = yaml.dump(
        {"detections": result.detections},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    return comment + body
