"""Check an OpenTelemetry Collector configuration as a graph of pipelines and components."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

Config = dict[str, Any]

SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions")


def merge(base: Any, overlay: Any) -> Any:
    """Merge as Helm's mergeOverwrite does: maps merge key by key, anything else is replaced."""
    if not isinstance(base, dict) or not isinstance(overlay, dict):
        return copy.deepcopy(overlay)

    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def ids(config: Config, section: str) -> set[str]:
    """Return the component IDs defined in one section."""
    return set(config.get(section) or {})


def pipelines(config: Config) -> dict[str, dict[str, list[str]]]:
    """Return the service's pipelines, each with its three lists present."""
    found = config.get("service", {}).get("pipelines") or {}
    return {
        name: {part: list((spec or {}).get(part) or []) for part in SECTIONS[:3]}
        for name, spec in found.items()
    }


def kind(component_id: str) -> str:
    """Return the type part of a component ID: `otlp` for `otlp/falco_risk`."""
    return component_id.split("/", 1)[0]


def undefined_references(config: Config) -> list[str]:
    """Describe every reference to a component or pipeline that the config does not define."""
    problems: list[str] = []
    receivers = ids(config, "receivers") | ids(config, "connectors")
    exporters = ids(config, "exporters") | ids(config, "connectors")
    processors = ids(config, "processors")
    enabled_extensions = set(config.get("service", {}).get("extensions") or [])

    for name, spec in pipelines(config).items():
        problems += [f"{name}: receiver {r}" for r in spec["receivers"] if r not in receivers]
        problems += [f"{name}: processor {p}" for p in spec["processors"] if p not in processors]
        problems += [f"{name}: exporter {e}" for e in spec["exporters"] if e not in exporters]
        if not spec["receivers"] or not spec["exporters"]:
            problems.append(f"{name}: needs a receiver and an exporter")
    problems += [
        f"service.extensions: {e}" for e in enabled_extensions if e not in ids(config, "extensions")
    ]
    problems += _storage_problems(config, enabled_extensions)
    problems += _authenticator_problems(config, enabled_extensions)
    problems += _connector_problems(config)
    return problems


def _authenticator_problems(config: Config, enabled_extensions: set[str]) -> list[str]:
    problems = []
    used = {c for spec in pipelines(config).values() for part in spec.values() for c in part}
    for section in ("receivers", "exporters"):
        for name, settings in (config.get(section) or {}).items():
            if name not in used:
                continue
            for authenticator in _values_of(settings, "authenticator"):
                if authenticator not in enabled_extensions:
                    problems.append(f"{name}: authenticator {authenticator} is not enabled")
    return problems


def _values_of(node: Any, key: str) -> list[Any]:
    if isinstance(node, dict):
        found = [node[key]] if key in node else []
        return found + [v for child in node.values() for v in _values_of(child, key)]
    if isinstance(node, list):
        return [v for child in node for v in _values_of(child, key)]
    return []


def _storage_problems(config: Config, enabled_extensions: set[str]) -> list[str]:
    problems = []
    for name, settings in (config.get("exporters") or {}).items():
        storage = ((settings or {}).get("sending_queue") or {}).get("storage")
        if storage and storage not in enabled_extensions:
            problems.append(f"{name}: queue storage {storage} is not an enabled extension")
    return problems


def _connector_problems(config: Config) -> list[str]:
    problems = []
    specs = pipelines(config)
    for connector, settings in (config.get("connectors") or {}).items():
        feeds = [n for n, s in specs.items() if connector in s["receivers"]]
        fed_by = [n for n, s in specs.items() if connector in s["exporters"]]
        if not feeds or not fed_by:
            problems.append(f"{connector}: a connector must export to and receive from pipelines")
        for target in route_targets(settings or {}):
            if target not in feeds:
                problems.append(f"{connector}: routes to {target}, which does not receive from it")
    return problems


def route_targets(routing: Config) -> set[str]:
    """Return every pipeline a routing connector can send to."""
    targets = set(routing.get("default_pipelines") or [])
    for route in routing.get("table") or []:
        targets |= set(route.get("pipelines") or [])
    return targets


def downstream(config: Config, start: Iterable[str]) -> set[str]:
    """Return the pipelines that data entering the start pipelines can reach."""
    specs = pipelines(config)
    connectors = ids(config, "connectors")
    seen: set[str] = set()
    queue = list(start)

    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        for connector in set(specs[name]["exporters"]) & connectors:
            queue += [n for n, s in specs.items() if connector in s["receivers"]]
    return seen


def fed_by_receiver(config: Config, receiver: str) -> set[str]:
    """Return the pipelines that take data from a receiver."""
    return {n for n, s in pipelines(config).items() if receiver in s["receivers"]}


def has_cycle(config: Config) -> bool:
    """Tell whether data can come back to a pipeline it already passed through."""
    specs = pipelines(config)
    connectors = ids(config, "connectors")
    for name in specs:
        after = {
            n
            for c in set(specs[name]["exporters"]) & connectors
            for n, s in specs.items()
            if c in s["receivers"]
        }
        if name in downstream(config, after):
            return True
    return False


def exporters_reached(config: Config, start: Iterable[str]) -> set[str]:
    """Return the exporters (not connectors) that data from the start pipelines reaches."""
    specs = pipelines(config)
    return {
        e
        for name in downstream(config, start)
        for e in specs[name]["exporters"]
        if e in ids(config, "exporters")
    }
