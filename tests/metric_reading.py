"""Reading metric points out of an OpenTelemetry SDK reader, for tests."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
)

from falco_risk.telemetry import Telemetry


@dataclass
class Recorded:
    """A real SDK meter provider whose metrics the test reads back."""

    reader: InMemoryMetricReader
    telemetry: Telemetry

    def points(self, name: str) -> dict[frozenset[tuple[str, object]], float]:
        """Sum or gauge values of metric ``name``, keyed by their attributes."""
        return {
            key: point.value  # type: ignore[union-attr]
            for key, point in _points(self.reader.get_metrics_data(), name)
        }

    def histogram(self, name: str) -> dict[frozenset[tuple[str, object]], HistogramDataPoint]:
        """Histogram points of metric ``name``, keyed by their attributes."""
        return dict(_points(self.reader.get_metrics_data(), name))  # type: ignore[arg-type]

    def units(self) -> dict[str, str]:
        """The unit of every metric reported so far, by name."""
        data = self.reader.get_metrics_data()
        return {
            metric.name: metric.unit or ""
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }


def recorded() -> Recorded:
    """Telemetry recording into an in-memory reader."""
    reader = InMemoryMetricReader()
    return Recorded(reader, Telemetry(MeterProvider(metric_readers=[reader])))


def attrs(**values: object) -> frozenset[tuple[str, object]]:
    """An attribute key as ``points`` returns it; dots spelled as double underscores."""
    return frozenset((key.replace("__", "."), value) for key, value in values.items())


def _points(
    data: MetricsData | None, name: str
) -> list[tuple[frozenset[tuple[str, object]], object]]:
    found = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    found.append((frozenset((point.attributes or {}).items()), point))
    return found
