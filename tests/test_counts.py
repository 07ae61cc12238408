"""Tests for the count_by and suppression metrics, read through the OpenTelemetry SDK."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from falco_risk.catalog import load_catalog
from falco_risk.counts import DetectionCounts
from falco_risk.pipeline import Limits, Pipeline
from falco_risk.tagger import TagTally
from falco_risk.telemetry import Telemetry
from otlp_builders import falco_json, request_with
from test_pipeline import RecordingSink
from test_tagger import SHELL_FIELDS, SHELL_OUTPUT, two_detection_catalog

SHELL = "10:00:00.0: Notice A shell was spawned in a container with an attached terminal"


def points(reader: InMemoryMetricReader, name: str) -> dict[frozenset[tuple[str, object]], int]:
    """The data points of one counter, by their attribute sets."""
    found: dict[frozenset[tuple[str, object]], int] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        found[frozenset(point.attributes.items())] = point.value
    return found


def test_tagged_records_are_counted_by_detection_and_count_by_fields() -> None:
    """One request's tagged alerts become one series per distinct count_by combination."""
    reader = InMemoryMetricReader()
    telemetry = Telemetry(MeterProvider(metric_readers=[reader]))
    pipeline = Pipeline(load_catalog(), RecordingSink(), Limits(4 << 20, 5.0), telemetry)
    root = {"user.name": "root", "container.name": "web", "proc.name": "bash"}
    request = request_with(falco_json(SHELL, **root), falco_json(SHELL, **root), "plain line")

    pipeline.export(request.SerializeToString())

    (attributes, count), *rest = points(reader, "falco_risk.detection.matches").items()
    assert rest == []
    assert count == 2
    assert dict(attributes) == {
        "security_rule.uuid": "d2feef92-d54a-4a19-8306-b47c6ceba5b2",
        "security_rule.name": "Kubernetes Falco Shell Spawned",
        "container_image": "unknown",
        "container_image_tag": "unknown",
        "container_name": "web",
        "parent": "unknown",
        "proc_exepath": "unknown",
        "process": "bash",
        "user": "root",
    }


def test_series_beyond_the_cap_go_to_one_overflow_series() -> None:
    """Past the cap, new combinations are counted together under otel.metric.overflow."""
    reader = InMemoryMetricReader()
    counts = DetectionCounts(MeterProvider(metric_readers=[reader]).get_meter("t"), series_limit=2)
    tally = TagTally(counts={("d", "D", (("user", name),)): 1 for name in ("a", "b", "c", "d")})

    counts.record(tally)
    counts.record(TagTally(counts={("d", "D", (("user", "a"),)): 5}))

    matches = points(reader, "falco_risk.detection.matches")
    assert matches[frozenset({("otel.metric.overflow", True)})] == 2
    by_user = {dict(k).get("user"): v for k, v in matches.items() if len(k) > 1}
    assert by_user == {"a": 6, "b": 1}


def test_suppressed_records_are_counted_by_detection_and_rule(tmp_path: Path) -> None:
    """A suppression's records appear under falco_risk.records.suppressed with its name."""
    reader = InMemoryMetricReader()
    telemetry = Telemetry(MeterProvider(metric_readers=[reader]))
    catalog = two_detection_catalog(tmp_path)
    pipeline = Pipeline(catalog, RecordingSink(), Limits(4 << 20, 5.0), telemetry)
    alert = falco_json(SHELL_OUTPUT, **{**SHELL_FIELDS, "k8s.ns.name": "ci"})

    pipeline.export(request_with(alert, alert).SerializeToString())

    assert points(reader, "falco_risk.records.suppressed") == {
        frozenset(
            {
                ("security_rule.uuid", "falco-terminal-shell"),
                ("security_rule.name", "Terminal shell in container"),
                ("falco_risk.suppression.rule", "ci-namespace"),
            }
        ): 2
    }
