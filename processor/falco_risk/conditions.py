"""Read the ``match:`` and suppression ``when:`` mappings of a catalog into conditions.

The keys of one mapping are ANDed. Field names are resolved against the
detection's extracted fields first, so ``field: {name: user}`` reads the same
keys the detection extracts ``user`` from; any other name is a raw Falco key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from falco_risk.errors import CatalogError
from falco_risk.match import (
    PRIORITIES,
    AllOf,
    AnyOf,
    Condition,
    FieldIs,
    Not,
    Phrase,
    PriorityAtLeast,
    ResourceIs,
    RuleIs,
    Tags,
    ValueTest,
    priority_rank,
)
from falco_risk.regex import Regex, RegexError

CONDITION_KEYS = (
    "phrase", "rule", "priority_at_least", "tags_any", "tags_all",
    "field", "resource", "all", "any", "not",
)  # fmt: skip
_FIELD_OPS = ("equals", "in", "regex", "contains")
_RESOURCE_OPS = ("equals", "in", "regex")
# Deeper nesting than this is surely a mistake, and would exhaust the stack.
MAX_DEPTH = 16

FieldKeys = Callable[[str], tuple[str, ...]]


def parse_condition(value: object, where: str, field_keys: FieldKeys, depth: int = 0) -> Condition:
    """Build the condition a mapping describes; raises CatalogError naming ``where``."""
    if depth > MAX_DEPTH:
        raise CatalogError(f"{where}: conditions nest deeper than {MAX_DEPTH} levels")
    if not isinstance(value, dict) or not value:
        raise CatalogError(f"{where}: expected a mapping with one or more of {_keys()}")

    parts: list[Condition] = []
    for key, spec in value.items():
        if key not in CONDITION_KEYS:
            raise CatalogError(f"{where}: unknown key {key!r}; known keys: {_keys()}")
        parts.append(_parse_one(str(key), spec, f"{where}: {key}", field_keys, depth))
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _parse_one(key: str, spec: object, where: str, field_keys: FieldKeys, depth: int) -> Condition:
    if key == "phrase":
        return Phrase(_scalar(spec, where))
    if key == "rule":
        return RuleIs(_names(spec, where))
    if key == "priority_at_least":
        level = _scalar(spec, where)
        if priority_rank(level) is None:
            raise CatalogError(f"{where}: {level!r} is not one of {', '.join(PRIORITIES)}")
        return PriorityAtLeast(level)
    if key in ("tags_any", "tags_all"):
        return Tags(_names(spec, where), require_all=key == "tags_all")
    if key == "field":
        body = _mapping(spec, where, required="name", ops=_FIELD_OPS)
        name = _scalar(body["name"], f"{where}: name")
        return FieldIs(name, field_keys(name), _value_test(body, where, _FIELD_OPS))
    if key == "resource":
        body = _mapping(spec, where, required="key", ops=_RESOURCE_OPS)
        return ResourceIs(_scalar(body["key"], f"{where}: key"), _value_test(body, where))
    if key == "not":
        return Not(parse_condition(spec, where, field_keys, depth + 1))

    if not isinstance(spec, list) or not spec:
        raise CatalogError(f"{where}: expected a non-empty list of conditions")
    parts = tuple(
        parse_condition(item, f"{where}: {i + 1}", field_keys, depth + 1)
        for i, item in enumerate(spec)
    )
    return AllOf(parts) if key == "all" else AnyOf(parts)


def _mapping(spec: object, where: str, required: str, ops: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(spec, dict):
        raise CatalogError(f"{where}: expected a mapping with {required!r} and one of {ops}")
    for key in spec:
        if key != required and key not in ops:
            raise CatalogError(f"{where}: unknown key {key!r}")
    if required not in spec:
        raise CatalogError(f"{where}: missing key {required!r}")
    chosen = [op for op in ops if op in spec]
    if len(chosen) != 1:
        raise CatalogError(f"{where}: give exactly one of {', '.join(ops)}")
    return spec


def _value_test(
    body: Mapping[str, Any], where: str, ops: tuple[str, ...] = _RESOURCE_OPS
) -> ValueTest:
    op = next(op for op in ops if op in body)
    if op == "regex":
        pattern = _scalar(body[op], f"{where}: regex")
        try:
            return ValueTest("regex", regex=Regex(pattern))
        except RegexError as exc:
            raise CatalogError(f"{where}: regex: {exc}") from None
    if op == "in":
        return ValueTest("in", _names(body[op], f"{where}: in"))
    return ValueTest(op, (_scalar(body[op], f"{where}: {op}"),))


def _names(spec: object, where: str) -> tuple[str, ...]:
    items = spec if isinstance(spec, list) else [spec]
    if not items:
        raise CatalogError(f"{where}: expected at least one value")
    return tuple(_scalar(item, where) for item in items)


def _scalar(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str) or not value:
        raise CatalogError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _keys() -> str:
    return ", ".join(CONDITION_KEYS)
