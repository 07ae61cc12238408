"""Translate the Splunk search shapes ESCU uses on Falco data into a catalog condition.

Understood: the Falco data source macro (falco-risk reads only Falco alerts,
so it needs no condition), quoted phrases (matched regardless of case, as
Splunk does), ``rule="..."`` terms, ``fillnull``, ``stats ... by <fields>``
(the fields become ``count_by``), the detection's ``..._filter`` macro (its
place is taken by suppressions) and the ``security_content_ctime`` display
macros. Everything else is listed as not translated; nothing is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Macros that select Falco's alerts in Splunk; falco-risk recognises the
# alerts by reading each record, so these need no condition.
FALCO_SOURCE_MACROS = frozenset({"kube_container_falco", "falco"})

_TOKEN = re.compile(r'`[^`]*`|"(?:[^"\\]|\\.)*"|[^\s"`]+(?:"(?:[^"\\]|\\.)*")?')
_MACRO = re.compile(r"`([A-Za-z0-9_]+)(?:\(([^`]*)\))?`")
_RULE_TERM = re.compile(r'rule="((?:[^"\\]|\\.)*)"')
_STATS_BY = re.compile(r"\bby\s+(.+)$", re.DOTALL)


@dataclass
class SearchTranslation:
    """The condition, counted fields and notes that a search translates into."""

    condition: dict[str, Any] | None = None
    count_by: list[str] = field(default_factory=list)
    filter_macro: str = ""
    translated: list[str] = field(default_factory=list)
    untranslated: list[str] = field(default_factory=list)


def translate_search(search: str) -> SearchTranslation:
    """Translate one search; parts it does not understand are listed, not guessed."""
    out = SearchTranslation()
    segments = _split_pipes(search)
    parts: list[dict[str, Any]] = []
    for token in _TOKEN.findall(segments[0] if segments else ""):
        _base_term(token, parts, out)
    for segment in segments[1:]:
        _command(segment, out)

    if len(parts) == 1:
        out.condition = parts[0]
    elif parts:
        out.condition = {"all": parts}
    return out


def _base_term(token: str, parts: list[dict[str, Any]], out: SearchTranslation) -> None:
    macro = _MACRO.fullmatch(token)
    if macro and macro.group(1) in FALCO_SOURCE_MACROS and not macro.group(2):
        out.translated.append(f"{token} selects Falco alerts, which falco-risk recognises itself")
        return
    if token.startswith('"') and token.endswith('"') and len(token) > 2:
        text = _unquote(token)
        if "*" in text:
            out.untranslated.append(f"{token} (a wildcard phrase)")
            return
        parts.append({"phrase": text})
        out.translated.append(f"{token} became a phrase condition")
        return
    rule = _RULE_TERM.fullmatch(token)
    if rule and "*" not in rule.group(1):
        parts.append({"rule": _unquote(f'"{rule.group(1)}"')})
        out.translated.append(f"{token} became a rule condition")
        return
    out.untranslated.append(token)


def _command(segment: str, out: SearchTranslation) -> None:
    text = " ".join(segment.split())
    name = text.split(" ", 1)[0]
    macro = _MACRO.fullmatch(text)
    if macro and macro.group(1).endswith("_filter") and not macro.group(2):
        out.filter_macro = macro.group(1)
        out.translated.append(f"{text} is expressed as suppressions")
    elif macro and macro.group(1) == "security_content_ctime":
        out.translated.append(f"{text} only formats output")
    elif name == "fillnull":
        out.translated.append("fillnull: missing count_by values are counted as 'unknown'")
    elif name == "stats" and (by := _STATS_BY.search(text)):
        fields = [f for f in re.split(r"[\s,]+", by.group(1).strip()) if f]
        out.count_by.extend(fields)
        out.translated.append(f"stats ... by {' '.join(fields)} is counted by those fields")
    else:
        out.untranslated.append(f"| {text}")


def _split_pipes(search: str) -> list[str]:
    """Split at pipes outside quotes and backticks."""
    segments, current, quote = [], [], ""
    index = 0
    while index < len(search):
        char = search[index]
        if quote:
            if char == "\\" and quote == '"' and index + 1 < len(search):
                current.append(search[index : index + 2])
                index += 2
                continue
            if char == quote:
                quote = ""
        elif char in '"`':
            quote = char
        elif char == "|":
            segments.append("".join(current).strip())
            current = []
            index += 1
            continue
        current.append(char)
        index += 1
    segments.append("".join(current).strip())
    return [s for s in segments if s] if segments[0] else ["", *[s for s in segments[1:] if s]]


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])
